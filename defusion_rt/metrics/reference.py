"""Full-reference metrics, where a data set has ground truth (e.g. an all-in-focus image)."""
from __future__ import annotations

import math

import numpy as np

from .noref import ssim_gaussian


PSNR_CAP = 100.0  # dB for identical images, so means and JSON stay finite


def psnr(ref: np.ndarray, f: np.ndarray, data_range: float = 255.0) -> float:
    mse = float(np.mean((ref - f) ** 2))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(data_range ** 2 / mse))


def ssim_ref(ref: np.ndarray, f: np.ndarray) -> float:
    return ssim_gaussian(ref, f)
