"""CUDA-stream pipelining of the fusion stage: while frame k computes, frame k+1 is copied in and frame k-1 is
copied out. Pinned host buffers are allocated once per slot (pinning per frame can be slower than a plain copy),
events order the three streams, and at most `depth` frames are in flight. On the CPU the same interface runs each
submission synchronously, so callers have one code path."""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..fuse import Fuser


class _Slot:
    def __init__(self, shape: tuple, device: torch.device):
        pin = device.type == "cuda"
        self.host_a = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
        self.host_b = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
        self.host_out = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
        self.dev_a = torch.empty(shape, dtype=torch.uint8, device=device)
        self.dev_b = torch.empty(shape, dtype=torch.uint8, device=device)
        self.dev_out = torch.empty(shape, dtype=torch.uint8, device=device)
        cuda = device.type == "cuda"
        self.copied_in = torch.cuda.Event() if cuda else None
        self.computed = torch.cuda.Event() if cuda else None
        self.copied_out = torch.cuda.Event() if cuda else None
        self.n = 0
        self.meta = None


def _to_float(x: torch.Tensor) -> torch.Tensor:  # B,H,W,3 uint8 BGR -> B,3,H,W float RGB in [0,1], channels-last
    return x.flip(-1).permute(0, 3, 1, 2).float().div_(255)


def _to_u8(x: torch.Tensor) -> torch.Tensor:  # the inverse, B,H,W,3 uint8 BGR
    return x.permute(0, 2, 3, 1).mul(255).round_().clamp_(0, 255).to(torch.uint8).flip(-1)


class StreamedFuser:
    """`submit(a, b, meta)` a batch of BGR uint8 frames and get back the submissions that have finished, oldest
    first, as (frames, meta); `flush()` returns the rest. At most `depth` submissions are in flight."""

    def __init__(self, fuser: Fuser, depth: int = 3):
        self.fuser, self.depth = fuser, max(1, depth)
        self.device = fuser.engine.device
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.copy_in, self.compute, self.copy_out = (torch.cuda.Stream(self.device) for _ in range(3))
        self.slots: list[_Slot] = []
        self.shape = None
        self.pending: deque[_Slot] = deque()
        self.next = 0

    def _collect(self, keep: int) -> list[tuple[list[np.ndarray], object]]:
        """Finished submissions in order, waiting on the oldest while more than `keep` are in flight."""
        done = []
        while self.pending:
            slot = self.pending[0]
            if self.cuda and not slot.copied_out.query():
                if len(self.pending) <= keep:
                    break
                slot.copied_out.synchronize()
            self.pending.popleft()
            done.append((list(slot.host_out.numpy()[:slot.n].copy()), slot.meta))
        return done

    def flush(self) -> list[tuple[list[np.ndarray], object]]:
        return self._collect(keep=0)

    def submit(self, a: list[np.ndarray], b: list[np.ndarray], meta=None) -> list[tuple[list[np.ndarray], object]]:
        n = len(a)
        if self.shape and n < self.shape[0] and a[0].shape == self.shape[1:]:
            # A short tail batch is padded with its last pair: compiled engines keep their one static shape.
            a, b = a + [a[-1]] * (self.shape[0] - n), b + [b[-1]] * (self.shape[0] - n)
        shape = (len(a), *a[0].shape)
        done = self._collect(keep=self.depth - 1)  # frees the slot about to be reused
        if shape != self.shape:  # a new resolution or batch size: reallocate once
            done += self.flush()
            self.shape, self.slots, self.next = shape, [_Slot(shape, self.device) for _ in range(self.depth)], 0
        slot = self.slots[self.next]
        self.next = (self.next + 1) % self.depth
        np.copyto(slot.host_a.numpy(), np.stack(a))
        np.copyto(slot.host_b.numpy(), np.stack(b))
        slot.n, slot.meta = n, meta
        if self.cuda:
            self._launch(slot)
        else:
            with torch.inference_mode():
                slot.host_out.copy_(_to_u8(self.fuser.fuse_tensors(_to_float(slot.host_a), _to_float(slot.host_b))))
        self.pending.append(slot)
        return done + (self._collect(keep=self.depth - 1) if not self.cuda else [])

    def _launch(self, slot: _Slot) -> None:
        with torch.cuda.stream(self.copy_in):
            slot.dev_a.copy_(slot.host_a, non_blocking=True)
            slot.dev_b.copy_(slot.host_b, non_blocking=True)
            slot.copied_in.record(self.copy_in)
        with torch.cuda.stream(self.compute), torch.inference_mode():
            self.compute.wait_event(slot.copied_in)
            slot.dev_out.copy_(_to_u8(self.fuser.fuse_tensors(_to_float(slot.dev_a), _to_float(slot.dev_b))))
            slot.computed.record(self.compute)
        with torch.cuda.stream(self.copy_out):
            self.copy_out.wait_event(slot.computed)
            slot.host_out.copy_(slot.dev_out, non_blocking=True)
            slot.copied_out.record(self.copy_out)
