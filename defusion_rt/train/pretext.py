"""The CUD pretext task as a training objective: its images, the network's inputs, the loss and its schedule."""
from __future__ import annotations

import torch

from ..config import Settings
from ..model import Decomposition
from .data import CUDDataset, batch_targets
from .loss import LossSchedule, cud_loss


class CUDObjective:
    terms = ("common", "unique_a", "unique_b", "recon")

    def __init__(self, data: list[str], settings: Settings):
        self.dataset = CUDDataset(data, settings)
        self.cfg = settings.loss
        self.schedule = LossSchedule(self.cfg, settings.train.schedule_scale)
        self.recon_full_at = settings.train.recon_full_at

    def rescale(self, total_iterations: int) -> float:
        """Place the loss milestones for a run of `total_iterations`: reconstruction at full weight at
        `recon_full_at` of it, the rest in the paper's proportions. Returns the schedule scale."""
        scale = self.recon_full_at * total_iterations / (self.cfg.recon_offset + self.cfg.recon_ramp)
        self.schedule = LossSchedule(self.cfg, scale)
        return scale

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["view_a"], batch["view_b"]

    def loss(self, out: Decomposition, batch: dict, it: int) -> dict[str, torch.Tensor]:
        return cud_loss(out, batch_targets(batch), batch["clean"], it, self.schedule)

    def extras(self, it: int) -> dict:
        return dict(alpha=self.schedule.alpha(it) or 0, beta=self.schedule.beta(it))
