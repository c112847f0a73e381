"""Per-task input conventions (spec section 4) between source images and the network's two RGB inputs.

- multi-exposure, multi-focus: RGB fed directly (grey sources arrive replicated to three channels).
- ir-vis: both sources greyed (BT.601 luma) and replicated, as the authors did; the output is grey. With
  colour=True the grey fusion becomes the luminance and the visible image keeps its chroma: adding the luminance
  change to every channel is exactly a Y swap in YCrCb, since R-Y, G-Y and B-Y stay put.
All functions work on NCHW float tensors on any device, so video runs them on the GPU.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from .errors import UserError

TASKS = ("ir-vis", "multi-exposure", "multi-focus")
LUMA = (0.299, 0.587, 0.114)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise UserError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")
    return task


def fuses_grey(task: str, colour: bool) -> bool:
    """ir-vis without colour: the network sees grey sources and returns grey."""
    return task == "ir-vis" and not colour


def luma(x: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW -> Bx1xHxW (a grey Bx1xHxW is returned as is). A matmul over the channel axis: one pass, and 6x
    faster than multiply-and-sum on the channels-last frames the video pipeline makes."""
    if x.shape[1] == 1:
        return x
    return (x.permute(0, 2, 3, 1) @ _luma_weights(x.device, x.dtype)).unsqueeze(1)


@functools.lru_cache(maxsize=8)
def _luma_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Made once per device and dtype: a fresh tensor per frame would be a blocking host-to-GPU copy per frame."""
    return torch.tensor(LUMA, device=device, dtype=dtype)


def network_inputs(a: torch.Tensor, b: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's two Bx3xHxW inputs; ir-vis sources may arrive grey already (Bx1xHxW, as video sends them)."""
    if task == "ir-vis":
        return luma(a).expand(-1, 3, -1, -1), luma(b).expand(-1, 3, -1, -1)
    return a, b


def network_output(fused: torch.Tensor, task: str, visible: torch.Tensor, colour: bool = False) -> torch.Tensor:
    """Clamp to [0,1]; for ir-vis make it grey, or the visible image with the fused luminance when colour."""
    if task != "ir-vis":
        return fused.clamp(0, 1)
    if fused.stride(1) == 0:  # already one grey channel expanded (pixel-wise baselines on grey inputs)
        y = fused[:, :1].clamp(0, 1)
    else:  # channel mean, fast for channels-last frames too
        y = fused.clamp(0, 1).permute(0, 2, 3, 1).mean(-1).unsqueeze(1)
    if not colour:
        return y.expand(-1, 3, -1, -1)
    return (visible + (y - luma(visible))).clamp(0, 1)


def match_sizes(a: np.ndarray, b: np.ndarray, resize: bool, names: tuple[str, str] = ("A", "B")) -> np.ndarray:
    """Return b at a's size; a mismatch is an error unless resize is allowed."""
    if a.shape[:2] == b.shape[:2]:
        return b
    if not resize:
        raise UserError(f"size mismatch: {names[0]} is {a.shape[1]}x{a.shape[0]}, {names[1]} is "
                        f"{b.shape[1]}x{b.shape[0]}; register the pair first or pass --resize")
    return cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
