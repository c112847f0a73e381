"""Classical fusion baselines as engines: what every user compares against, and a cheap fallback on slow devices.

All take and return Bx3xHxW float tensors in [0,1] on any device (Mertens runs through OpenCV on the CPU).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..model.pyramid import blur_kernel, collapse, laplacian_pyramid
from ..tasks import luma
from .base import Engine


class ClassicalEngine(Engine):
    needs_padding = False

    def __init__(self, device: torch.device, precision: str = "fp32"):
        super().__init__(device, "fp32")  # cheap enough in fp32 everywhere


def _grey(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Both inputs one grey channel expanded to three (ir-vis video): pixel-wise methods need only that channel."""
    return a.shape[1] == 3 and a.stride(1) == 0 and b.stride(1) == 0


class AverageEngine(ClassicalEngine):
    name = "average"

    @torch.inference_mode()
    def __call__(self, a, b):
        if _grey(a, b):
            return self(a[:, :1], b[:, :1]).expand(-1, 3, -1, -1)
        return torch.add(a.float(), b.float()).mul_(0.5)  # inputs are in [0, 1]: no clamp needed


class MaxEngine(ClassicalEngine):
    """Per pixel, the source with the higher luminance (its colour kept); for grey inputs, the absolute max."""
    name = "max"

    @torch.inference_mode()
    def __call__(self, a, b):
        if _grey(a, b):
            return torch.maximum(a[:, :1], b[:, :1]).float().expand(-1, 3, -1, -1)
        pick_a = luma(a) >= luma(b)  # luma's weights are made once per device: no host copy per call
        return torch.where(pick_a, a, b).float()


class LaplacianEngine(ClassicalEngine):
    """Laplacian-pyramid fusion (Burt & Adelson 1983): max-abs detail coefficients, averaged base."""
    name = "laplacian"

    def __init__(self, device: torch.device, precision: str = "fp32", levels: int = 5):
        super().__init__(device, precision)
        self.levels, self.kernel = levels, blur_kernel(device)

    @torch.inference_mode()
    def __call__(self, a, b):
        levels = max(1, min(self.levels, int(np.log2(max(2, min(a.shape[-2:]) // 8)))))
        pa = laplacian_pyramid(a.float(), levels, self.kernel)
        pb = laplacian_pyramid(b.float(), levels, self.kernel)
        fused = [torch.where(la.abs() >= lb.abs(), la, lb) for la, lb in zip(pa[:-1], pb[:-1])]
        return collapse([*fused, (pa[-1] + pb[-1]) / 2]).clamp(0, 1)


class MertensEngine(ClassicalEngine):
    """OpenCV's exposure fusion (Mertens, Kautz, Van Reeth 2007): contrast, saturation and exposedness weights."""
    name = "mertens"

    def __init__(self, device: torch.device, precision: str = "fp32"):
        super().__init__(device, precision)
        self.merge = cv2.createMergeMertens()

    @torch.inference_mode()
    def __call__(self, a, b):
        out = []
        for x, y in zip(a, b):
            imgs = [np.ascontiguousarray((t.permute(1, 2, 0).cpu().numpy()[..., ::-1] * 255).round().astype(np.uint8))
                    for t in (x, y)]
            fused = self.merge.process(imgs)[..., ::-1]
            out.append(torch.from_numpy(np.ascontiguousarray(fused)).permute(2, 0, 1))
        return torch.stack(out).to(a.device).float().clamp(0, 1)


CLASSICAL = {e.name: e for e in (AverageEngine, MaxEngine, LaplacianEngine, MertensEngine)}
