"""Fusion engines, chosen by name: one interface for every backend (see base.Engine)."""
from __future__ import annotations

from ..errors import UserError
from .base import Engine, resolve_device
from .classical import CLASSICAL
from .compiled import COMPILED
from .cpu import fastest, native_bf16
from .eager import EagerEngine
from .openvino import OpenVinoEngine

BUILT = {**COMPILED, OpenVinoEngine.name: OpenVinoEngine}  # engines built per input shape and cached on disk
NETWORK_ENGINES = ["eager", *BUILT]


def auto_choice(device: str = "auto", task: str | None = None, model: str | None = None,
                engine: str | None = None) -> dict:
    """What `run` uses where a setting says auto: camera rate first, from the saved benchmarks. On a CPU the
    real-time variant with the engine and precision measured fastest for this CPU's class (engines.cpu: OpenVINO
    int8 where installed), never bf16 without bf16 instructions; the paper network compiled. On CUDA the task's
    best variant in fp16 through torch.compile (2.5x eager on an H200, benchmarks/results/nvidia-h200_*.json; its
    CUDA graphs are captured by the warm-up in the fusion thread, and Inductor caches the build on disk).
    `engine`: the one the user named, whose precision is then chosen for it."""
    from ..model import model_for
    if resolve_device(device).type == "cuda":
        return dict(model=model or model_for(task), engine=engine or "compile", precision="fp16")
    model = model or "defusion_fast"
    pick = fastest() if model == "defusion_fast" else ("compile", "bf16" if native_bf16() else "fp32")
    engine = engine or pick[0]
    if engine == pick[0]:
        precision = pick[1]
    else:  # a named engine's own best: onnx runs fp32 only here, int8 is OpenVINO's
        precision = "bf16" if native_bf16() and engine not in ("onnx",) else "fp32"
    return dict(model=model, engine=engine, precision=precision)


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
    return BUILT[name](model, dev, precision, **options)


__all__ = ["auto_choice", "BUILT", "CLASSICAL", "COMPILED", "Engine", "EagerEngine", "create_engine", "resolve_device",
           "NETWORK_ENGINES"]
