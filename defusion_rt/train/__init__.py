from .cud import CUDSample, CUDTargets, make_views, sample_masks, targets
from .loss import LossSchedule, cud_loss
from .loop import train

__all__ = ["CUDSample", "CUDTargets", "make_views", "sample_masks", "targets", "LossSchedule", "cud_loss", "train"]
