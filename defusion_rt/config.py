"""Validated settings for the model, training and inference, loaded from YAML (configs/defusion.yaml).

Every key has a default here; a YAML file overrides some of them. An unknown key or a value of the wrong type is
a UserError that names the key and, for a typo, the closest valid key.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import UserError


@dataclass
class ModelSettings:
    name: Literal["defusion", "defusion_fast", "defusion_lite"] = "defusion"  # a registered variant
    width: float = 1.0      # width multiplier; overrides the variant's when not 1.0
    decision_map: bool = False  # defusion_fast: the fused head predicts w, fused = w A + (1 - w) B (multi-focus)
    difference: bool = False    # defusion_fast: the affine fused head adds d (A - B), d from e_ua - e_ub
    detail: bool = False        # defusion_fast: the affine fused head adds each source's fine detail, weighted
    pick: bool = False          # defusion_fast: the fused image's finest levels are picked per pixel by contrast


@dataclass
class CUDSettings:
    """Common-and-unique-decomposition pretext task (spec section 2)."""
    coarse_grid: int = 13            # coarse Bernoulli grid, cells per side
    fine_grids: list = field(default_factory=lambda: [26, 27])  # one is chosen per sample
    p_min: float = 0.1               # keep-probability p = p_min + U(0,1) / p_div
    p_div: float = 1.12
    swap_prob: float = 0.5           # chance to swap the two masks


@dataclass
class LossSettings:
    """Milestones in iterations at the paper's scale; train.schedule_scale multiplies all of them."""
    alpha_start: int = 3000          # before: region terms ignore errors outside their region
    alpha_full: int = 7000           # alpha = alpha_max * (min(t, alpha_full) / alpha_full)^2
    alpha_max: float = 0.15
    alpha_decay_after: int = 40000   # after: alpha *= alpha_decay
    alpha_decay: float = 0.1
    recon_start: int = 17000         # reconstruction term off before this
    recon_offset: int = 10000        # beta = (min(t - recon_offset, recon_ramp) / recon_ramp)^2
    recon_ramp: int = 14000


@dataclass
class TrainSettings:
    crop: int = 256                  # random-resized-crop size (multiple of 8)
    batch: int = 4
    lr: float = 1.0e-3               # Adam; the loss is summed over the batch as in the official code
    iterations: int = 637500         # 51 epochs x 12,500 iterations in the paper
    lr_milestones: list = field(default_factory=lambda: [0.196, 0.392, 0.588, 0.784])  # fractions of iterations
    lr_gamma: float = 0.5
    warmup: int = 0                  # iterations of linear learning-rate warm-up (0 in the paper)
    schedule_scale: float = 1.0      # scales the loss milestones so a short run keeps the paper's shape
    recon_full_at: float = 0.3       # with --minutes: fraction of the run where the reconstruction term is full
    jitter: list = field(default_factory=lambda: [0.1, 1.0])       # brightness/contrast/saturation factor range
    crop_scale: list = field(default_factory=lambda: [0.08, 1.0])  # area fraction range of the random crop
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    compile: bool = False            # torch.compile the training step's model: pays back on long GPU runs only
                                     # (the GPU kit's probe measures build time and speed-up, and chooses)
    workers: int = 2                 # data-loader processes
    log_every: int = 10              # iterations between CSV log rows
    checkpoint_every: int = 500      # iterations between checkpoints
    seed: int = 1


@dataclass
class AdaptSettings:
    """Fusion-loss adaptation (`train --adapt ir-vis`): unsupervised losses against the two sources, no ground truth."""
    intensity: float = 1.0           # weight of L1(F, max(A, B)): keep the brighter (hotter) source's intensity
    gradient: float = 1.0            # weight of L1(|grad F|, max(|grad A|, |grad B|)) on Sobel magnitudes
    contrast: float = 0.0            # ir-vis: weight of L1(F, the sources mixed per pixel by local contrast), the
                                     # detail a brighter but flat source hides under the max target
    contrast_floor: float = 0.0      # ir-vis: added to each local std (0-1 scale) before the contrast weights: where
                                     # both sources are flat (std below it, sensor noise) they mix evenly instead of
                                     # the noise choosing a source, a choice that flickers from frame to frame
    stability: float = 0.0           # ir-vis: weight of the flicker of F between each pair and a re-noised copy of it
                                     # (metrics/temporal.py as a loss): F may change only as far as the sources did
    zoom: list = field(default_factory=lambda: [0.8, 1.25])  # crop side in source pixels / train.crop (log-uniform)
    teacher: str = ""                # ir-vis: weights whose fused image is a third target (distillation), e.g.
                                     # the paper network's for the real-time variant
    distill: float = 1.0             # weight of L1(F, teacher's F) when a teacher is given
    l1: float = 1.0                  # multi-focus/multi-exposure: weight of L1(F, the photograph)
    mef_ssim: float = 0.0            # multi-exposure: weight of 1 - MEF-SSIM(A, B; F), the metric as an objective
    hdr: float = 0.0                 # multi-exposure: stops the scene's light varies by across a synthetic pair
                                     # (0: the photograph's own range), plus sensor noise (train/synthetic.py)
    stops: list = field(default_factory=lambda: [1.0, 3.0])  # multi-exposure: each shot this many stops off


@dataclass
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    cud: CUDSettings = field(default_factory=CUDSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    adapt: AdaptSettings = field(default_factory=AdaptSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_choice(key: str, value: Any, choices: tuple) -> Any:
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"config key '{key}' cannot be {value!r}; {hint}choose one of: {', '.join(map(str, choices))}")


def _check_value(key: str, value: Any, typ: Any) -> Any:
    if get_origin(typ) is Literal:
        return _check_choice(key, value, get_args(typ))
    if get_origin(typ) in (Union, UnionType):  # e.g. one output or a list of them
        if not isinstance(value, tuple(get_origin(t) or t for t in get_args(typ))):
            names = " or ".join((get_origin(t) or t).__name__ for t in get_args(typ))
            raise UserError(f"config key '{key}' must be {names}, got {type(value).__name__} {value!r}")
        return value
    base = get_origin(typ) or typ
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is bool and not isinstance(value, bool) or base is not bool and isinstance(value, bool):
        raise UserError(f"config key '{key}' must be {base.__name__}, got {value!r}")
    if not isinstance(value, base):
        raise UserError(f"config key '{key}' must be {base.__name__}, got {type(value).__name__} {value!r}")
    if base is int and value < (low := 1 if key.rsplit(".", 1)[-1] in AT_LEAST_ONE else 0):
        raise UserError(f"config key '{key}' must be {low} or more, got {value}")
    return value


# Counts that cannot be zero; every other integer setting must not be negative.
AT_LEAST_ONE = {"batch", "iterations", "log_every", "checkpoint_every", "crop"}


def build(cls: type, data: dict | None, prefix: str = "") -> Any:
    """Build dataclass `cls` from a dict, validating every key and value type."""
    data = data or {}
    if not isinstance(data, dict):
        raise UserError(f"config section '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise UserError(f"unknown config key '{prefix}{key}'{hint}")
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = build(typ, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_value(prefix + key, value, typ)
    return cls(**kwargs)


def number_range(key: str, value) -> tuple[float, float]:
    """A [low, high] setting (adapt.zoom, adapt.stops) as two numbers, low <= high, or one line naming the fix."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and value[0] <= value[1]
    if not ok:
        raise UserError(f"config key '{key}' must be two numbers [low, high] with low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error as one line with where it is: '<problem> at line L, column C; fix the YAML there'."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}; fix the YAML syntax there (indent with spaces, 'key: value', quote text with ':')"


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_settings(path: str | Path | None = None) -> Settings:
    """Defaults, overridden by the YAML file at `path` when given."""
    return build(Settings, load_yaml(path) if path else {})
