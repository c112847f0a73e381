"""Fusion quality metrics on grey 8-bit levels (see grey.py for the colour convention, noref.py for sums).

`score(a, b, f, task, gt)` returns every metric of one fused image, keyed by the names published tables use.
"""
from __future__ import annotations

import numpy as np

from .grey import to_grey255
from .noref import (average_gradient, entropy, mef_ssim, mutual_information, qabf, scd, spatial_frequency, ssim,
                    std_dev, vif)
from .reference import psnr, ssim_ref

# Column order of the tables; every metric here is better when higher.
NOREF = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
SUMMED = ("MI", "VIF", "SSIM")  # sums over (A,F) and (B,F)


def score(a: np.ndarray, b: np.ndarray, f: np.ndarray, task: str = "ir-vis", gt: np.ndarray | None = None) -> dict:
    """All metrics for fused f of sources a, b (any of RGB/grey, float [0,1] or uint8)."""
    a, b, f = to_grey255(a), to_grey255(b), to_grey255(f)
    out = {
        "EN": entropy(f), "SD": std_dev(f), "SF": spatial_frequency(f), "AG": average_gradient(f),
        "MI": mutual_information(a, f) + mutual_information(b, f), "SCD": scd(a, b, f),
        "VIF": vif(a, f) + vif(b, f), "Qabf": qabf(a, b, f), "SSIM": ssim(a, f) + ssim(b, f),
    }
    if task == "multi-exposure":
        out["MEF-SSIM"] = mef_ssim([a, b], f)
    if gt is not None:
        g = to_grey255(gt)
        out["PSNR"], out["SSIM_ref"] = psnr(g, f), ssim_ref(g, f)
    return out


def metric_names(task: str, with_gt: bool) -> list[str]:
    return NOREF + (["MEF-SSIM"] if task == "multi-exposure" else []) + (["PSNR", "SSIM_ref"] if with_gt else [])


__all__ = ["score", "metric_names", "to_grey255", "entropy", "std_dev", "spatial_frequency", "average_gradient",
           "mutual_information", "ssim", "qabf", "scd", "vif", "mef_ssim", "psnr", "ssim_ref", "NOREF", "SUMMED"]
