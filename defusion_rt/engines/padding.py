"""Reflect padding used at inference: 16 px on every side, then up to a multiple of 8 for static engines."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_size(h: int, w: int, pad: int = 16, multiple: int = 8) -> tuple[int, int]:
    def up(n: int) -> int:
        return -(-(n + 2 * pad) // multiple) * multiple
    return up(h), up(w)


def pad(x: torch.Tensor, pad_px: int = 16, multiple: int = 8) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflect-pad NCHW x; returns the padded tensor and the (top, left, h, w) box to crop back."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, pad_px, multiple)
    extra_h, extra_w = ph - h - 2 * pad_px, pw - w - 2 * pad_px
    # Reflect needs pad < size; tiny images fall back to replicate.
    mode = "reflect" if min(h, w) > pad_px + max(extra_h, extra_w) else "replicate"
    x = F.pad(x, (pad_px, pad_px + extra_w, pad_px, pad_px + extra_h), mode=mode)
    return x, (pad_px, pad_px, h, w)


def crop(x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    top, left, h, w = box
    return x[..., top:top + h, left:left + w]
