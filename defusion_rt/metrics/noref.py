"""No-reference fusion metrics of a fused image F given sources A and B, in the published tables' convention.

Most IR-visible papers since 2022 report values made by the evaluator published with CDDFuse; these functions
follow its choices (checked against its values in tests/test_metrics.py, from ../shared/docs/metric-reference.md):
- AG: central differences (one-sided at the borders) over the full image;
- Qabf: Sobel by zero-padded 'same' filtering in float32 (the border becomes an edge every image keeps), edge
  angle pi/2 where the x-gradient is 0;
- SSIM: 7x7 uniform window, sample covariance, constants for a data range of 2 (scikit-image 0.19's defaults on
  float input), mean over the image less a 3-pixel border.
Inputs are grey [0, 255] float arrays (see grey.py). Two-source metrics MI, SSIM and VIF are *sums* over (A,F)
and (B,F) (so SSIM is near 1 and can exceed it); divide by 2 for the per-source mean. MI is in nats (natural
log) on 256-level joint histograms; EN is in bits.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .grey import gaussian_filter

EPS = 1e-10


def entropy(f: np.ndarray) -> float:
    """EN: Shannon entropy of the 256-bin histogram, bits."""
    p = np.bincount(f.astype(np.uint8).ravel(), minlength=256) / f.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def std_dev(f: np.ndarray) -> float:
    """SD: population standard deviation of grey levels."""
    return float(f.std())


def spatial_frequency(f: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2), RF/CF the RMS of horizontal/vertical first differences."""
    rf = np.mean(np.diff(f, axis=1) ** 2)
    cf = np.mean(np.diff(f, axis=0) ** 2)
    return float(math.sqrt(rf + cf))


def average_gradient(f: np.ndarray) -> float:
    """AG: mean of sqrt((dx^2 + dy^2) / 2), central differences / 2 inside and one-sided at the borders."""
    dy, dx = np.gradient(f)
    return float(np.mean(np.sqrt((dx ** 2 + dy ** 2) / 2)))


def mutual_information(x: np.ndarray, f: np.ndarray) -> float:
    """MI(X; F) in nats from the 256x256 joint histogram of grey levels."""
    joint = np.histogram2d(x.ravel(), f.ravel(), bins=256, range=[[0, 256], [0, 256]])[0] / x.size
    px, pf = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (px @ pf)[nz])).sum())


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 2.0, win: int = 7) -> float:
    """Mean SSIM as the published tables compute it: uniform win x win window, sample covariance, K1 0.01,
    K2 0.03 with data_range 2 (so the constants barely matter on 0-255 images), border of win // 2 left out."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win * win
    box = lambda img: cv2.blur(img, (win, win), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mx, my = box(x), box(y)
    cov = n / (n - 1)
    sxx, syy, sxy = cov * (box(x * x) - mx * mx), cov * (box(y * y) - my * my), cov * (box(x * y) - mx * my)
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    r = win // 2
    return float(smap[r:-r, r:-r].mean())


def ssim_gaussian(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of Wang et al. 2004 (11x11 Gaussian, sigma 1.5, L = 255, valid region): the full-reference
    SSIM against ground truth, where no fusion-table convention applies."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = gaussian_filter(x, 11, 1.5), gaussian_filter(y, 11, 1.5)
    sxx = gaussian_filter(x * x, 11, 1.5) - mx * mx
    syy = gaussian_filter(y * y, 11, 1.5) - my * my
    sxy = gaussian_filter(x * y, 11, 1.5) - mx * my
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(smap.mean())


SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and angle; zero padding and float32 as the published evaluator (see module docstring)."""
    img = img.astype(np.float32)
    gx = cv2.filter2D(img, cv2.CV_32F, SOBEL_X, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.filter2D(img, cv2.CV_32F, SOBEL_X.T, borderType=cv2.BORDER_CONSTANT)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(gx == 0, np.float32(np.pi / 2), np.arctan(gy / gx))
    return np.sqrt(gx * gx + gy * gy), angle.astype(np.float32)


# Xydeas & Petrovic (2000) sigmoid constants for edge strength (g) and orientation (a) preservation.
QG = dict(gamma=0.9994, kappa=-15.0, sigma=0.5)
QA = dict(gamma=0.9879, kappa=-22.0, sigma=0.8)


def _sigmoid(x: np.ndarray, gamma: float, kappa: float, sigma: float) -> np.ndarray:
    return gamma / (1 + np.exp(kappa * (x - sigma)))


def _edge_preservation(gs, as_, gf, af) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gs > gf, gf / gs, gs / gf)
    ratio = np.nan_to_num(ratio, nan=0.0)  # both gradients zero: nothing to preserve
    orient = 1 - np.abs(as_ - af) / (np.pi / 2)
    return _sigmoid(ratio, **QG) * _sigmoid(orient, **QA)


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q^AB/F: how much of the sources' Sobel edge strength and orientation survives in F, weighted by |grad|."""
    ga, aa = _sobel(a)
    gb, ab = _sobel(b)
    gf, af = _sobel(f)
    qa, qb = _edge_preservation(ga, aa, gf, af), _edge_preservation(gb, ab, gf, af)
    den = (ga + gb).sum()
    return float(((qa * ga + qb * gb).sum() / den) if den > 0 else 0.0)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else 0.0


def scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Sum of correlations of differences (Aslantas & Bendes 2015): corr(F-B, A) + corr(F-A, B)."""
    return _corr(f - b, a) + _corr(f - a, b)


def vif(ref: np.ndarray, dist: np.ndarray, sigma_n: float = 2.0) -> float:
    """Pixel-domain visual information fidelity (Sheikh & Bovik 2006), four scales, of `dist` given `ref`."""
    num = den = 0.0
    for scale in range(4):
        n = 2 ** (4 - scale) + 1  # window 17, 9, 5, 3
        if scale > 0:
            ref, dist = gaussian_filter(ref, n, n / 5)[::2, ::2], gaussian_filter(dist, n, n / 5)[::2, ::2]
        if min(ref.shape) < n:
            break
        mu1, mu2 = gaussian_filter(ref, n, n / 5), gaussian_filter(dist, n, n / 5)
        s11 = np.maximum(gaussian_filter(ref * ref, n, n / 5) - mu1 * mu1, 0)
        s22 = np.maximum(gaussian_filter(dist * dist, n, n / 5) - mu2 * mu2, 0)
        s12 = gaussian_filter(ref * dist, n, n / 5) - mu1 * mu2
        g = s12 / (s11 + EPS)
        sv = s22 - g * s12
        flat = s11 < EPS  # no signal in the reference: all of dist is noise
        g[flat], sv[flat], s11[flat] = 0, s22[flat], 0
        blank = s22 < EPS
        g[blank], sv[blank] = 0, 0
        neg = g < 0
        sv[neg], g[neg] = s22[neg], 0
        sv = np.maximum(sv, EPS)
        num += np.log10(1 + g * g * s11 / (sv + sigma_n)).sum()
        den += np.log10(1 + s11 / sigma_n).sum()
    return float(num / den) if den > 0 else 0.0


def mef_ssim(sources: list[np.ndarray], f: np.ndarray, p: float = 4.0, data_range: float = 255.0) -> float:
    """Single-scale MEF-SSIM (Ma, Zeng, Wang 2015) with 11x11 Gaussian windows.

    Per window the desired patch has the largest source contrast and the contrast-weighted (w = sigma^p) mean
    structure of the sources; the score compares F's structure and contrast with it (luminance is not judged).
    """
    c2 = (0.03 * data_range) ** 2
    mu = [gaussian_filter(x, 11, 1.5) for x in sources]
    muf = gaussian_filter(f, 11, 1.5)
    var = [np.maximum(gaussian_filter(x * x, 11, 1.5) - m * m, 0) for x, m in zip(sources, mu)]
    sd = [np.sqrt(v) + 1e-6 for v in var]
    w = [s ** p for s in sd]
    wsum = sum(w)
    omega = [wi / wsum for wi in w]
    cov = {}
    for j in range(len(sources)):
        for k in range(j, len(sources)):
            cov[j, k] = cov[k, j] = gaussian_filter(sources[j] * sources[k], 11, 1.5) - mu[j] * mu[k]
    cov_f = [gaussian_filter(x * f, 11, 1.5) - m * muf for x, m in zip(sources, mu)]
    # ||s_bar||^2 with unit-variance structures s_k = (x_k - mu_k) / sd_k
    norm2 = sum(omega[j] * omega[k] * cov[j, k] / (sd[j] * sd[k]) for j in range(len(sources)) for k in range(len(sources)))
    norm = np.sqrt(np.maximum(norm2, 1e-12))
    c_hat = np.maximum.reduce(sd)
    cov_hat_f = c_hat * sum(o * cf / s for o, cf, s in zip(omega, cov_f, sd)) / norm
    var_f = np.maximum(gaussian_filter(f * f, 11, 1.5) - muf * muf, 0)
    smap = (2 * cov_hat_f + c2) / (c_hat ** 2 + var_f + c2)
    return float(smap.mean())
