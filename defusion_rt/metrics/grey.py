"""Grey-level convention shared by every metric: BT.601 luma on the 8-bit range, as float64 in [0, 255].

Colour images are converted with OpenCV's RGB2GRAY weights (0.299, 0.587, 0.114) and rounded to integers, as the
field's common evaluators read images (`cv2.imread(..., GRAYSCALE)`); float inputs in [0, 1] are scaled first.
"""
from __future__ import annotations

import cv2
import numpy as np


def to_grey255(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 3:  # weighted in float, then rounded: the published evaluator's reading of a colour file
        img = (np.rint(cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)) if img.shape[2] == 3
               else img[..., 0])
    return img.astype(np.float64)


def gaussian_filter(img: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Correlation with a normalised size x size Gaussian, 'valid' region only (no border effects)."""
    k = cv2.getGaussianKernel(size, sigma)
    out = cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)
    r = size // 2
    return out[r:img.shape[0] - r, r:img.shape[1] - r]
