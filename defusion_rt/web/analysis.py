"""What the web app shows for one pair: the fused image, the network's decomposition (common and unique parts),
and the field's metrics for the chosen method beside the classical baselines on the same pair."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..engines import Engine
from ..fusion import Fuser, decompose, display_gain
from ..metrics import score
from ..tasks import match_sizes

BASELINES = ("average", "max", "laplacian")
SHOWN = ("Qabf", "MI", "VIF", "SSIM", "EN", "SD")  # the columns published tables lead with


def analyse(a: np.ndarray, b: np.ndarray, task: str, method: str, colour: bool,
            engine_for: Callable[[str, str], Engine], decomposer: Callable[[str], object]) -> dict:
    """a, b: HxWx3 float RGB in [0,1]. `engine_for(task, method)` gives the engine of a method, `decomposer(variant)`
    the network whose decomposition is shown (fusion.decomposition_network: CUD weights unless the user's own)."""
    b = match_sizes(a, b, resize=False, names=("A", "B"))
    t0 = time.perf_counter()
    engine = engine_for(task, method)
    fused = Fuser(engine, task, colour=colour)(a, b)
    seconds = time.perf_counter() - t0
    parts, gains = {}, {}
    model = getattr(engine, "model", None)
    if model is not None:  # the network: what it separated into common and unique information
        net = decomposer(model.variant) if hasattr(model, "variant") else model  # else a network handed in
        found = decompose(net, a, b, task, engine.device)
        gains = {k: display_gain(v) if k.startswith("unique") else 1.0 for k, v in found.items() if k != "fused"}
        parts = {k: np.clip(found[k] * g, 0, 1) for k, g in gains.items()}
    rows = [dict(method=_label(engine, method), **_metrics(a, b, fused, task))]
    for name in BASELINES:
        if name != method:
            rows.append(dict(method=name, **_metrics(a, b, Fuser(engine_for(task, name), task)(a, b), task)))
    return dict(fused=fused, parts=parts, gains=gains, metrics=rows, columns=list(SHOWN), seconds=seconds,
                engine=engine.describe())


def _label(engine: Engine, method: str) -> str:
    variant = getattr(getattr(engine, "model", None), "variant", "")
    return variant or method


def _metrics(a: np.ndarray, b: np.ndarray, f: np.ndarray, task: str) -> dict:
    values = score(a, b, np.clip(f, 0, 1), task)
    return {k: round(float(values[k]), 4) for k in SHOWN}
