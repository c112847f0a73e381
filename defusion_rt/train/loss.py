"""CUD loss (spec section 2): masked L1 per head with a leak term alpha and a ramped reconstruction term beta."""
from __future__ import annotations

import torch

from ..config import LossSettings
from ..model import Decomposition
from .cud import CUDTargets


class LossSchedule:
    """alpha(t) and beta(t); every milestone is multiplied by `scale` so short runs keep the paper's shape."""

    def __init__(self, cfg: LossSettings, scale: float = 1.0):
        s = scale
        self.alpha_start, self.alpha_full = cfg.alpha_start * s, cfg.alpha_full * s
        self.decay_after, self.recon_start = cfg.alpha_decay_after * s, cfg.recon_start * s
        self.recon_offset, self.recon_ramp = cfg.recon_offset * s, cfg.recon_ramp * s
        self.alpha_max, self.decay = cfg.alpha_max, cfg.alpha_decay

    def alpha(self, t: int) -> float | None:
        """None while region terms ignore errors outside their region (warm-up)."""
        if t < self.alpha_start:
            return None
        a = self.alpha_max * (min(t, self.alpha_full) / self.alpha_full) ** 2
        return a * self.decay if t > self.decay_after else a

    def beta(self, t: int) -> float:
        if t < self.recon_start:
            return 0.0
        return (min(t - self.recon_offset, self.recon_ramp) / self.recon_ramp) ** 2


def _region_l1(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor, alpha: float | None) -> torch.Tensor:
    weight = region if alpha is None else region + alpha * (1 - region)
    # Mean over C*H*W per sample, summed over the batch (the official reduction).
    return (pred * weight - target).abs().flatten(1).mean(1).sum()


def cud_loss(out: Decomposition, tgt: CUDTargets, clean: torch.Tensor, t: int,
             schedule: LossSchedule) -> dict[str, torch.Tensor]:
    """Loss terms at iteration t; 'total' is their sum."""
    alpha, beta = schedule.alpha(t), schedule.beta(t)
    terms = {
        "common": _region_l1(out.common, tgt.common, tgt.region_common, alpha),
        "unique_a": _region_l1(out.unique_a, tgt.unique_a, tgt.region_a, alpha),
        "unique_b": _region_l1(out.unique_b, tgt.unique_b, tgt.region_b, alpha),
        "recon": beta * (out.fused - clean).abs().flatten(1).mean(1).sum(),
    }
    terms["total"] = sum(terms.values())
    return terms
