"""Fusion engines, chosen by name: one interface for every backend (see base.Engine)."""
from __future__ import annotations

from ..errors import UserError
from .base import Engine, resolve_device
from .classical import CLASSICAL
from .compiled import COMPILED
from .eager import EagerEngine

NETWORK_ENGINES = ["eager", *COMPILED]


def auto_choice(device: str = "auto", task: str | None = None, model: str | None = None) -> dict:
    """What `run` uses where a setting says auto: camera rate first, from the saved benchmarks (the fastest engine
    within 1e-2 of fp32). On a CPU the real-time variant in bf16 where the CPU has it, through torch.export +
    AOTInductor (cached on disk: later runs load it in a second); the paper network compiled. On CUDA the task's
    best variant in fp16 (eager: TensorRT and compile are one flag away and need a build)."""
    import torch
    from ..model import model_for
    if resolve_device(device).type == "cuda":
        return dict(model=model or model_for(task), engine="eager", precision="fp16")
    bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    model = model or "defusion_fast"
    return dict(model=model, engine="export" if model == "defusion_fast" else "compile",
                precision="bf16" if bf16 else "fp32")


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


__all__ = ["auto_choice", "CLASSICAL", "COMPILED", "Engine", "EagerEngine", "create_engine", "resolve_device",
           "NETWORK_ENGINES"]
