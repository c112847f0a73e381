"""Adaptation on synthetic pairs made from photographs (`train --adapt multi-focus|multi-exposure --data PHOTOS`).

CUD teaches the fused head to pick the clean source where the other is noise. Defocus and bad exposure are other
corruptions, so CUD weights fuse such pairs little better than averaging. The multi-focus and multi-exposure
literature trains on synthetic pairs instead: one well-made photograph, degraded two complementary ways, with the
photograph itself as the target.
- multi-focus: a disk defocus (the lens' point-spread function) of random radius outside a random smooth region
  with a soft edge in one source, inside it in the other.
- multi-exposure: the photograph taken 1-3 stops under and 1-3 stops over (in linear light, clipped, 8-bit), so
  one source keeps the highlights and the other the shadows.
The evaluation set with ground truth (benchmarks/synthetic_multifocus.py) uses Gaussian blur and other
photographs, so it is not the training distribution, but it is the same kind of corruption: judge real pairs
(Lytro, MFFW, MEFB) by their metrics too.
"""
from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..config import Settings, number_range
from ..errors import UserError
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


def smooth_field(size: int, rng: np.random.Generator) -> np.ndarray:
    """size x size, values about 0-1, varying over 2-5 cells across (cubic interpolation of random values)."""
    cells = int(rng.integers(2, 6))
    return cv2.resize(rng.random((cells, cells)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)


def focus_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random region with a soft edge (1 = source a in focus), about half of the image on average."""
    field = smooth_field(size, rng)
    mask = (field > np.quantile(field, rng.uniform(0.25, 0.75))).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.5, 3.0))[..., None]


def defocus_pair(sharp: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = focus_mask(sharp.shape[0], rng)
    blur_a, blur_b = (disk_blur(sharp, rng.uniform(1.0, 4.0)) for _ in range(2))
    return mask * sharp + (1 - mask) * blur_a, (1 - mask) * sharp + mask * blur_b


def exposure_pair(img: np.ndarray, rng: np.random.Generator, hdr: float = 0.0,
                  stops: tuple[float, float] = (1.0, 3.0)) -> tuple[np.ndarray, np.ndarray]:
    """hdr > 0: the scene's light first varies over the image by up to hdr stops (a smooth random field: sky and
    shade, a lamp), so that, as in a real bracketed scene, neither shot holds every region; each shot then gets
    sensor noise. hdr = 0: the photograph's own (8-bit) range, as the shipped weights were trained."""
    linear = np.power(img, 2.2)
    noise = 0.0
    if hdr:
        linear = linear * 2.0 ** (hdr * (smooth_field(img.shape[0], rng) - 0.5))[..., None]
        noise = rng.uniform(0.0, 2.0) / 255

    def shot(stops: float) -> np.ndarray:
        out = np.power(np.clip(linear * 2.0 ** stops, 0, 1), 1 / 2.2)
        if noise:
            out = out + rng.normal(0.0, noise, out.shape)
        return np.round(np.clip(out, 0, 1) * 255) / 255  # a camera's 8 bits: shadows of the dark shot lose levels

    return shot(-rng.uniform(*stops)), shot(rng.uniform(*stops))


MAKERS = {"multi-focus": defocus_pair, "multi-exposure": exposure_pair}


class SyntheticPairDataset(CUDDataset):
    """Index = global sample number; returns the photograph and the pair (a, b) made from it, each 3xSxS."""

    def __init__(self, roots, settings: Settings, task: str):
        super().__init__(roots, settings)
        self.make = MAKERS[task]
        if task == "multi-exposure":
            ad = settings.adapt
            self.make = partial(exposure_pair, hdr=ad.hdr, stops=number_range("adapt.stops", ad.stops))

    def __getitem__(self, g: int) -> dict:
        rng = np.random.default_rng([self.s.train.seed, 13, g])
        target, skipped = self.photo(g, rng)
        a, b = self.make(target, rng)
        to_t = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), np.float32))  # noqa: E731
        return dict(target=to_t(target), a=to_t(a), b=to_t(b), skipped=skipped)


def _gauss(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Bx1xHxW -> the 'valid' Gaussian-weighted local means, as metrics.grey.gaussian_filter computes them."""
    k = torch.exp(-((torch.arange(size, device=x.device, dtype=x.dtype) - size // 2) ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    return F.conv2d(F.conv2d(x, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))


def mef_ssim(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, p: float = 4.0) -> torch.Tensor:
    """Differentiable single-scale MEF-SSIM (Ma, Zeng, Wang 2015) of grey Bx1xHxW images on 0-255, per image:
    the metric `evaluate` reports (metrics/noref.py), as DeepFuse and MEF-Net train with it.

    In float64, as the metric: local variances are differences of squares near 255^2, and in float32 their rounding
    (about 0.01) swamps the variance of a flat or clipped window; training batches then scored up to 1.8 (the
    mef_ssim column below 0 in benchmarks/training/fast/multi_exposure*/log.csv), and their gradients were noise."""
    out_dtype = f.dtype
    a, b, f = a.double(), b.double(), f.double()
    c2 = (0.03 * 255) ** 2
    src = (a, b)
    mu = [_gauss(x) for x in src]
    muf = _gauss(f)
    sd = [(_gauss(x * x) - m * m).clamp_min(0).add(1e-6).sqrt() for x, m in zip(src, mu)]
    w = [s ** p for s in sd]
    omega = [wi / (w[0] + w[1]) for wi in w]
    cov_ab = _gauss(a * b) - mu[0] * mu[1]
    # ||s_bar||^2 for unit-variance structures: sum over j, k of omega_j omega_k cov_jk / (sd_j sd_k)
    var = [(_gauss(x * x) - m * m) for x, m in zip(src, mu)]
    norm2 = omega[0] ** 2 * var[0] / sd[0] ** 2 + omega[1] ** 2 * var[1] / sd[1] ** 2 \
        + 2 * omega[0] * omega[1] * cov_ab / (sd[0] * sd[1])
    norm = norm2.clamp_min(1e-12).sqrt()
    c_hat = torch.maximum(sd[0], sd[1])
    cov_f = [_gauss(x * f) - m * muf for x, m in zip(src, mu)]
    cov_hat_f = c_hat * sum(o * cf / s for o, cf, s in zip(omega, cov_f, sd)) / norm
    var_f = (_gauss(f * f) - muf * muf).clamp_min(0)
    return ((2 * cov_hat_f + c2) / (c_hat ** 2 + var_f + c2)).mean((1, 2, 3)).to(out_dtype)


class SyntheticPairObjective:
    """L1 to the photograph plus L1 between Sobel magnitudes (edges are what focus and exposure lose), and, with
    adapt.mef_ssim, 1 - MEF-SSIM of the fused image against the two sources (no target needed)."""

    def __init__(self, task: str, data: list[str], settings: Settings):
        if task not in MAKERS:
            raise UserError(f"synthetic pairs are made for {', '.join(MAKERS)}, not '{task}'")
        self.dataset = SyntheticPairDataset(data, settings, task)
        self.w_l1, self.w_grad, self.w_mef = settings.adapt.l1, settings.adapt.gradient, settings.adapt.mef_ssim
        self.terms = ("l1", "gradient") + (("mef_ssim",) if self.w_mef else ())

    def rescale(self, total_iterations: int) -> None:
        """No loss milestones; the learning-rate steps are the only schedule."""

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["a"], batch["b"]

    def loss(self, out: Decomposition, batch: dict, it: int) -> dict[str, torch.Tensor]:
        f, t = out.fused, batch["target"]
        grad = (sobel_magnitude(f.mean(1, keepdim=True)) - sobel_magnitude(t.mean(1, keepdim=True))).abs().mean()
        terms = {"l1": self.w_l1 * (f - t).abs().mean(), "gradient": self.w_grad * grad}
        if self.w_mef:
            grey = [255 * x.mean(1, keepdim=True) for x in (batch["a"], batch["b"], f)]
            terms["mef_ssim"] = self.w_mef * (1 - mef_ssim(*grey)).mean()
        terms["total"] = sum(terms.values())
        return terms

    def extras(self, it: int) -> dict:
        return {}
