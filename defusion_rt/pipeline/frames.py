"""Fusing batches of BGR uint8 frames through a Fuser: one host->device copy per stream, conversion on device."""
from __future__ import annotations

import numpy as np
import torch

from ..fuse import Fuser


def _to_device(frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(frames)).to(device, non_blocking=True)      # B,H,W,3 uint8 BGR
    return x.permute(0, 3, 1, 2).flip(1).float().div_(255)                    # B,3,H,W RGB [0,1]


def fuse_frames(fuser: Fuser, a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    dev = fuser.engine.device
    with torch.inference_mode():
        out = fuser.fuse_tensors(_to_device(a, dev), _to_device(b, dev))
        out = out.mul(255).round_().clamp_(0, 255).to(torch.uint8).flip(1).permute(0, 2, 3, 1).cpu().numpy()
    return list(out)
