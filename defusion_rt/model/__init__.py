from .defusion import DeFusion, DeFusionConfig, Decomposition, FusedOnly
from .registry import (VARIANTS, create_model, default_weights, export_weights, list_models, model_for,
                       variant_for_weights)

__all__ = ["DeFusion", "DeFusionConfig", "Decomposition", "FusedOnly", "VARIANTS", "create_model",
           "default_weights", "export_weights", "list_models", "model_for", "variant_for_weights"]
