"""Stage 3: registration of stream B onto stream A (stage.py applies it in the pipeline)."""
from .estimate import combine, estimate, estimate_auto, estimate_board, estimate_ecc, estimate_features
from .registration import Registration, common_view, load_calibration
from .stage import RegisterSettings, RegisterStage

__all__ = ["RegisterSettings", "RegisterStage", "Registration", "combine", "common_view", "estimate", "estimate_auto",
           "estimate_board", "estimate_ecc", "estimate_features", "load_calibration"]
