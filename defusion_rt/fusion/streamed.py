"""Fusing video frames: BGR uint8 in, BGR uint8 out, with CUDA-stream pipelining.

On CUDA, while batch k computes, batch k+1 is copied in and batch k-1 copied out: pinned host buffers are
allocated once per slot (pinning per frame can be slower than a plain copy), events order the three streams, and at
most `depth` batches are in flight. On the CPU the same interface runs each submission synchronously, so callers
have one code path.

Colour conversions happen on the host with OpenCV, on uint8, before the frames become tensors: ir-vis frames
travel as one grey channel (a third of the bytes and of the float work), others as RGB. The float tensors the
engine sees are built once, on the device.
"""
from __future__ import annotations

from collections import deque

import cv2
import numpy as np
import torch

from .fuser import Fuser


class _Slot:
    def __init__(self, shape: tuple, device: torch.device):
        cuda = device.type == "cuda"
        self.host_a, self.host_b, self.host_out = (torch.empty(shape, dtype=torch.uint8, pin_memory=cuda)
                                                   for _ in range(3))
        self.host_ok = torch.ones(1, dtype=torch.bool, pin_memory=cuda)  # an fp16 result all finite
        if cuda:
            self.dev_a, self.dev_b, self.dev_out = (torch.empty(shape, dtype=torch.uint8, device=device)
                                                    for _ in range(3))
            self.dev_ok = torch.ones(1, dtype=torch.bool, device=device)
            # blocking=True: waiting on copied_out sleeps the thread instead of spinning a CPU core.
            self.copied_in, self.computed = torch.cuda.Event(), torch.cuda.Event()
            self.copied_out = torch.cuda.Event(blocking=True)
        self.n = 0
        self.meta = None
        self.checked = False  # whether host_ok speaks for this submission (fp16 engines)


def _to_float(x: torch.Tensor) -> torch.Tensor:  # B,H,W,C uint8 -> B,C,H,W float in [0,1] (channels-last memory)
    return x.permute(0, 3, 1, 2).float().div_(255)


def _to_u8(x: torch.Tensor) -> torch.Tensor:  # the inverse
    return x.permute(0, 2, 3, 1).mul(255).round_().clamp_(0, 255).to(torch.uint8)


class StreamedFuser:
    """`submit(a, b, meta)` a batch of BGR uint8 frames and get back the submissions that have finished, oldest
    first, as (frames, meta); `flush()` returns the rest. At most `depth` submissions are in flight."""

    def __init__(self, fuser: Fuser, depth: int = 3, pad_to: int = 1):
        self.fuser, self.depth = fuser, max(1, depth)
        self.pad_to = pad_to  # smaller batches are padded to this size: the many-pairs pipeline's built shape
        self.device = fuser.engine.device
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.copy_in, self.compute, self.copy_out = (torch.cuda.Stream(self.device) for _ in range(3))
        self.channels = 1 if fuser.grey else 3
        self.to_net, self.from_net = (cv2.COLOR_BGR2GRAY, cv2.COLOR_GRAY2BGR) if fuser.grey else \
            (cv2.COLOR_BGR2RGB, cv2.COLOR_RGB2BGR)
        self.slots: list[_Slot] = []
        self.shape = None
        self.pending: deque[_Slot] = deque()
        self.next = 0
        self.repaired = 0  # submissions whose fp16 result overflowed and were fused again in fp32

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
            if slot.checked and not slot.host_ok[0]:
                self._repair(slot)
            out = slot.host_out.numpy()
            done.append(([cv2.cvtColor(out[i], self.from_net) for i in range(slot.n)], slot.meta))
        return done

    def flush(self) -> list[tuple[list[np.ndarray], object]]:
        return self._collect(keep=0)

    def submit(self, a: list[np.ndarray], b: list[np.ndarray], meta=None) -> list[tuple[list[np.ndarray], object]]:
        n = len(a)
        h, w = a[0].shape[:2]
        built = self.shape[0] if self.shape and (h, w) == self.shape[1:3] else 0
        if n < max(built, self.pad_to):
            # A short batch is padded with its last pair: compiled engines keep their one static shape.
            extra = max(built, self.pad_to) - n
            a, b = a + [a[-1]] * extra, b + [b[-1]] * extra
        shape = (len(a), h, w, self.channels)
        done = self._collect(keep=self.depth - 1)  # frees the slot about to be reused
        if shape != self.shape:  # a new resolution or batch size: reallocate once
            done += self.flush()
            self.shape, self.slots, self.next = shape, [_Slot(shape, self.device) for _ in range(self.depth)], 0
        slot = self.slots[self.next]
        self.next = (self.next + 1) % self.depth
        for host, frames in ((slot.host_a.numpy(), a), (slot.host_b.numpy(), b)):
            for i, f in enumerate(frames):  # converted straight into the pinned slot: no copy per frame
                cv2.cvtColor(f, self.to_net, dst=host[i, ..., 0] if self.channels == 1 else host[i])
        slot.n, slot.meta = n, meta
        if self.cuda:
            self._launch(slot)
        else:
            self._compute(slot, slot.host_a, slot.host_b, slot.host_out, slot.host_ok)
        self.pending.append(slot)
        # Collected after the launch too: with depth 1 this submission's own result comes back now, not with the
        # next submission (a camera period of latency); with depth d, the one d-1 submissions back.
        return done + self._collect(keep=self.depth - 1)

    def _u8(self, fused: torch.Tensor) -> torch.Tensor:
        return _to_u8(fused[:, :1] if self.channels == 1 else fused)

    @torch.inference_mode()
    def _compute(self, slot: _Slot, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, ok: torch.Tensor) -> None:
        """Fuse a, b into out; for fp16 engines the finite flag goes to ok, read when the result is collected."""
        fused, finite = self.fuser.fuse_deferred(_to_float(a), _to_float(b))
        out.copy_(self._u8(fused))
        slot.checked = finite is not None
        if slot.checked:
            ok.copy_(finite.reshape(1))

    @torch.inference_mode()
    def _repair(self, slot: _Slot) -> None:
        """A submission whose fp16 result overflowed, fused again in fp32 (rare, so synchronously)."""
        a, b = (_to_float(x.to(self.device)) for x in (slot.host_a, slot.host_b))
        slot.host_out.copy_(self._u8(self.fuser.repair(a, b)))
        self.repaired += 1

    def _launch(self, slot: _Slot) -> None:
        with torch.cuda.stream(self.copy_in):
            slot.dev_a.copy_(slot.host_a, non_blocking=True)
            slot.dev_b.copy_(slot.host_b, non_blocking=True)
            slot.copied_in.record(self.copy_in)
        with torch.cuda.stream(self.compute):
            self.compute.wait_event(slot.copied_in)
            self._compute(slot, slot.dev_a, slot.dev_b, slot.dev_out, slot.dev_ok)
            slot.computed.record(self.compute)
        with torch.cuda.stream(self.copy_out):
            self.copy_out.wait_event(slot.computed)
            slot.host_out.copy_(slot.dev_out, non_blocking=True)
            if slot.checked:
                slot.host_ok.copy_(slot.dev_ok, non_blocking=True)
            slot.copied_out.record(self.copy_out)
