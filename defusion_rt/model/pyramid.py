"""Laplacian pyramids (Burt & Adelson 1983) in torch: the classical baseline's fusion and the fast network's
detail pick (fast.DetailPick) build them the same way."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def blur_kernel(device=None) -> torch.Tensor:
    """The 5x5 binomial kernel, one per RGB channel (a grouped conv)."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device) / 16
    return (k1[:, None] * k1[None, :]).expand(3, 1, 5, 5).contiguous()


def _down(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, stride=2, groups=3)


def upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def laplacian_pyramid(x: torch.Tensor, levels: int, k: torch.Tensor) -> list[torch.Tensor]:
    """`levels` detail levels, finest first, then the low-pass residual."""
    pyr = []
    for _ in range(levels):
        low = _down(x, k)
        pyr.append(x - upsample(low, x.shape[-2:]))
        x = low
    return pyr + [x]


def lowpass(x: torch.Tensor, levels: int, k: torch.Tensor) -> torch.Tensor:
    """The residual a `levels`-level pyramid of x would end with, without its detail levels."""
    for _ in range(levels):
        x = _down(x, k)
    return x


def collapse(pyr: list[torch.Tensor]) -> torch.Tensor:
    """The image a pyramid holds: the residual upsampled and its details added back, coarsest first."""
    x = pyr[-1]
    for detail in reversed(pyr[:-1]):
        x = upsample(x, detail.shape[-2:]) + detail
    return x
