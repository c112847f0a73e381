"""One door to the network: `create_model(name, weights=...)` for the CLI, training, engines and benchmarks.

Variants are data (timm-style): a name maps to a width and the preprocessing facts that travel with the weights.
Weight files are plain dicts of tensors loaded with `weights_only=True`, so loading never unpickles code.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from torch import nn

from .defusion import DeFusion, DeFusionConfig
from .fast import DeFusionFast, FastConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"

VARIANTS: dict[str, dict] = {
    # width 1.0 is the paper's network; pad/multiple are the inference conventions of spec section 4.
    # `weights` are the CUD weights (every task); `task_weights` replace them for one task where they fuse better.
    "defusion": dict(width=1.0, pad=16, multiple=8, weights="defusion.pt",
                     task_weights={"ir-vis": "defusion_ir_vis.pt"}),
    "defusion_lite": dict(width=0.5, pad=16, multiple=8, weights="defusion_lite.pt"),
    # The real-time CPU variant (model/fast.py): same roles and heads at about 1/35 of the paper network's FLOPs.
    "defusion_fast": dict(arch="fast", width=1.0, pad=16, multiple=16, weights="defusion_fast.pt",
                          task_weights={"ir-vis": "defusion_fast_ir_vis.pt",
                                        "multi-focus": "defusion_fast_multi_focus.pt",
                                        "multi-exposure": "defusion_fast_multi_exposure.pt"}),
}

# Architecture families: a variant names one (default "defusion"); weight files record theirs.
ARCHS = {"defusion": (DeFusion, DeFusionConfig), "fast": (DeFusionFast, FastConfig)}
HEADS = ("decision_map", "difference", "detail", "pick")  # the fast variant's fused-head options, kept in its files

TRAIN_HINT = ("give a weight file written by `defusion-rt train --out RUN_DIR` (RUN_DIR/model.pt) or one shipped in "
              "defusion_rt/model/weights/")


def default_weights(name: str = "defusion", task: str | None = None) -> Path:
    """The shipped weights for `task`: its own file where one is shipped, else the variant's CUD weights."""
    own = VARIANTS[name].get("task_weights", {}).get(task)
    if own and (WEIGHTS_DIR / own).is_file():
        return WEIGHTS_DIR / own
    return WEIGHTS_DIR / VARIANTS[name]["weights"]


# Where a command is not told which variant (`--model auto`), each task gets the one that fuses it best on the
# held-out sets (benchmarks/evaluation: Qabf, MI and VIF against the baselines). `run` on a CPU takes the
# real-time variant whatever the task: there speed decides (engines.auto_choice).
BEST_FOR_TASK = {"ir-vis": "defusion_fast", "multi-focus": "defusion_fast", "multi-exposure": "defusion_fast"}


def model_for(task: str | None, weights: str | Path | None = None) -> str:
    """What `--model auto` means: the weight file's architecture where one is given, else the task's best."""
    if weights:
        return variant_for_weights(weights)
    return BEST_FOR_TASK.get(task, "defusion")


def variant_for_weights(path: str | Path) -> str:
    """The first registered variant whose architecture a weight file fits (for `model: auto` with --weights)."""
    family = _read_weights(Path(path)).get("arch", {}).get("family", "defusion")
    return next((n for n, v in VARIANTS.items() if v.get("arch", "defusion") == family), "defusion")


def list_models() -> list[str]:
    return sorted(VARIANTS)


def _read_weights(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"weights file not found: {path}; {TRAIN_HINT}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated, or a pickle holding code
        raise UserError(f"cannot read weights {path} ({type(err).__name__}); the file is corrupt or not a "
                        f"defusion-rt weight file; {TRAIN_HINT}") from None
    state = _unwrap(blob)
    if state is None:
        raise UserError(f"weights {path} hold no state dict (a mapping of parameter names to tensors, alone or "
                        f"under 'state_dict' or 'model'); {TRAIN_HINT}")
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}  # DDP, compile
    arch = blob.get("arch") if isinstance(blob.get("arch"), dict) else _guess_arch(state)
    return {**blob, "state_dict": state, "arch": arch}


# Where training scripts put the weights: ours, PyTorch Lightning and most repositories, plain state dicts.
WRAPPERS = ("state_dict", "model", "model_state_dict", "net", "network", "params")


def _unwrap(blob) -> dict | None:
    """The parameter mapping inside a loaded file: the file itself, or under one of the common keys."""
    if not isinstance(blob, dict):
        return None
    if blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
        return blob
    for key in WRAPPERS:
        if isinstance(blob.get(key), dict):
            return _unwrap(blob[key])
    return None


def _guess_arch(state: dict) -> dict:
    """A plain state dict's family and width: the family whose parameter names it has, the width from its first
    convolution's output channels against that family's full-width network."""
    for family, (net, config) in ARCHS.items():
        ref = net(config()).state_dict()
        if ref.keys() == state.keys():
            first = next(iter(ref))
            return {"family": family, "width": state[first].shape[0] / ref[first].shape[0]}
    return {}


def create_model(name: str = "defusion", weights: str | Path | None = None, width: float | None = None,
                 pretrained: bool = False, task: str | None = None) -> nn.Module:
    """Build variant `name`; load `weights` (a path), or the shipped default weights (for `task`) when `pretrained`.

    The width stored in a weight file wins over the variant's, so a file always builds the network it fits.
    """
    if name not in VARIANTS:
        raise UserError(f"unknown model '{name}'; choose one of: {', '.join(list_models())}")
    blob = None
    if weights is None and pretrained:
        weights = default_weights(name, task)
        if not weights.is_file():
            raise UserError(f"no weights are shipped for model '{name}' (looked for {weights.name}); train them with "
                            f"`defusion-rt train --model {name} --data DIR --out RUN_DIR` and pass "
                            "--weights RUN_DIR/model.pt, or choose another --model")
    family = VARIANTS[name].get("arch", "defusion")
    if weights is not None:
        blob = _read_weights(Path(weights))
        width = blob.get("arch", {}).get("width", width)
        theirs = blob.get("arch", {}).get("family", "defusion")
        if theirs != family:
            fits = [n for n, v in VARIANTS.items() if v.get("arch", "defusion") == theirs]
            raise UserError(f"weights {weights} are for the '{theirs}' architecture, not model '{name}'; "
                            f"pass --model {fits[0] if fits else '(none registered)'}")
    net, config = ARCHS[family]
    extra = {k: True for k in HEADS if blob is not None and blob.get("arch", {}).get(k)}
    if "decision_map" in extra and len(extra) > 1:
        raise UserError(f"weights {weights} record a decision map with an affine head's term, which `defusion-rt "
                        "train` never writes; give a weight file written by it or one shipped in "
                        "defusion_rt/model/weights/")
    model = net(config(width=width or VARIANTS[name]["width"], **extra))
    if blob is not None:
        _check_fit(model, blob["state_dict"], weights, name)
        model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    model.variant = name  # engines name it in the overlay and the run summary
    return model.eval()


def _check_fit(model: nn.Module, state: dict, weights, name: str) -> None:
    """One line naming the first parameter that is missing, unexpected or of another shape."""
    ours = model.state_dict()
    missing, unexpected = [k for k in ours if k not in state], [k for k in state if k not in ours]
    shapes = [k for k in ours if k in state and ours[k].shape != state[k].shape]
    if not (missing or unexpected or shapes):
        return
    if shapes:
        k = shapes[0]
        first = f"{k} is {tuple(state[k].shape)} in the file but {tuple(ours[k].shape)} in the model"
    else:
        first = f"{'missing' if missing else 'unexpected'} key {(missing or unexpected)[0]}"
    raise UserError(f"weights {weights} do not fit model '{name}' ({len(missing)} missing, {len(unexpected)} "
                    f"unexpected, {len(shapes)} of another shape; first: {first}); pass the matching --model "
                    "or retrain")


def family_of(model: nn.Module) -> str:
    return next(f for f, (net, _) in ARCHS.items() if type(model) is net)


def export_weights(model: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Save an fp16 state dict (half the size; the network runs in fp32 after loading) with its architecture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    arch = {"family": family_of(model), "width": model.cfg.width}
    arch.update({k: True for k in HEADS if getattr(model.cfg, k, False)})
    torch.save({"format": "defusion-rt-weights/1", "arch": arch, "state_dict": state, "meta": meta or {}}, path)
    return path
