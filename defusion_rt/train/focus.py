"""Multi-focus adaptation (`train --adapt multi-focus --data PHOTOS`): pairs made from sharp photographs.

CUD teaches the fused head to pick the clean source where the other is noise; a defocused region is a different
corruption, so CUD weights fuse multi-focus pairs little better than averaging. The multi-focus literature trains
on synthetic pairs instead: a sharp photograph, defocused in complementary regions, with the photograph itself
as the target. Here the defocus is a disk (the lens' point-spread function) of random radius, and the in-focus
region is a random smooth blob with a soft edge. The evaluation set with ground truth
(benchmarks/synthetic_multifocus.py) uses Gaussian blur and other photographs, so it is not the training
distribution, but it is the same kind of corruption: judge real pairs (Lytro, MFFW) by their metrics too.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..config import Settings
from ..model import Decomposition
from .adapt import sobel_magnitude
from .data import CUDDataset


def disk_blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Defocus: convolution with a uniform disk of `radius` pixels (anti-aliased by supersampling)."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1:0.25, -r:r + 1:0.25]
    inside = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    k = cv2.resize(inside, (2 * r + 1, 2 * r + 1), interpolation=cv2.INTER_AREA)
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


def focus_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random region with a soft edge (1 = source a in focus), about half of the image on average."""
    cells = int(rng.integers(2, 6))
    field = cv2.resize(rng.random((cells, cells)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    mask = (field > np.quantile(field, rng.uniform(0.25, 0.75))).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.5, 3.0))[..., None]


class FocusDataset(CUDDataset):
    """Index = global sample number; returns the sharp crop and the pair (a, b), each 3xSxS in [0, 1]."""

    def __getitem__(self, g: int) -> dict:
        rng = np.random.default_rng([self.s.train.seed, 13, g])
        sharp, skipped = self.photo(g, rng)
        mask = focus_mask(sharp.shape[0], rng)
        blur_a, blur_b = (disk_blur(sharp, rng.uniform(1.0, 4.0)) for _ in range(2))
        a = mask * sharp + (1 - mask) * blur_a
        b = (1 - mask) * sharp + mask * blur_b
        to_t = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), np.float32))  # noqa: E731
        return dict(sharp=to_t(sharp), a=to_t(a), b=to_t(b), skipped=skipped)


class FocusObjective:
    """L1 to the sharp photograph plus L1 between Sobel magnitudes (edges are what focus is about)."""

    terms = ("l1", "gradient")

    def __init__(self, data: list[str], settings: Settings):
        self.dataset = FocusDataset(data, settings)
        self.w_grad = settings.adapt.gradient

    def rescale(self, total_iterations: int) -> None:
        """No loss milestones; the learning-rate steps are the only schedule."""

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["a"], batch["b"]

    def loss(self, out: Decomposition, batch: dict, it: int) -> dict[str, torch.Tensor]:
        f, s = out.fused, batch["sharp"]
        grad = (sobel_magnitude(f.mean(1, keepdim=True)) - sobel_magnitude(s.mean(1, keepdim=True))).abs().mean()
        terms = {"l1": (f - s).abs().mean(), "gradient": self.w_grad * grad}
        terms["total"] = terms["l1"] + terms["gradient"]
        return terms

    def extras(self, it: int) -> dict:
        return {}
