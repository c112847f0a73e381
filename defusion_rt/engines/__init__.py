"""Fusion engines, chosen by name: one interface for every backend (see base.Engine)."""
from __future__ import annotations

from ..errors import UserError
from .base import Engine, resolve_device
from .classical import CLASSICAL
from .compiled import COMPILED
from .eager import EagerEngine

NETWORK_ENGINES = ["eager", *COMPILED]


def create_engine(name: str = "eager", device: str = "auto", precision: str = "fp32", model=None,
                  weights: str | None = None, model_name: str = "defusion", task: str | None = None,
                  **options) -> Engine:
    """Build engine `name`; network engines load `model`, or `weights`, or the shipped default weights for `task`."""
    dev = resolve_device(device)
    if name in CLASSICAL:
        return CLASSICAL[name](dev, precision)
    if name not in NETWORK_ENGINES:
        raise UserError(f"unknown engine '{name}'; choose one of: {', '.join(NETWORK_ENGINES + list(CLASSICAL))}")
    if model is None:
        from ..model import create_model
        model = create_model(model_name, weights=weights, pretrained=weights is None, task=task)
    if name == "eager":
        return EagerEngine(model, dev, precision, **options)
    return COMPILED[name](model, dev, precision, **options)


__all__ = ["CLASSICAL", "COMPILED", "Engine", "EagerEngine", "create_engine", "resolve_device", "NETWORK_ENGINES"]
