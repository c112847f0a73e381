"""Pipeline settings: one section per stage (the keys of a pipelines/*.yaml file), each defined beside the stage
it configures; every key and every enum value is validated, with a did-you-mean for typos.

A file with a `pairs:` list describes several camera pairs fused by one engine (pipelines/two_pairs.yaml): each
pair has its own sources, register and render sections; fusion and run are shared."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..capture import SourcesSettings
from ..config import build, load_yaml
from ..errors import UserError
from ..fusion import FusionSettings
from ..register import RegisterSettings
from ..render import RenderSettings


@dataclass
class RunSettings:
    max_frames: int = 0         # stop after this many fused frames (0: when the sources end)
    progress: bool = True       # progress bar for recorded sources


@dataclass
class PipelineSettings:
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    register: RegisterSettings = field(default_factory=RegisterSettings)
    fusion: FusionSettings = field(default_factory=FusionSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    run: RunSettings = field(default_factory=RunSettings)


@dataclass
class PairSettings:
    """One camera pair of a many-pairs pipeline."""
    name: str = ""              # names its window, live view and summary row (default pair1, pair2, ...)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    register: RegisterSettings = field(default_factory=RegisterSettings)
    render: RenderSettings = field(default_factory=RenderSettings)


@dataclass
class MultiSettings:
    fusion: FusionSettings = field(default_factory=FusionSettings)
    run: RunSettings = field(default_factory=RunSettings)
    pairs: list = field(default_factory=list)   # PairSettings, one per camera pair


def _override(data: dict, overrides: dict | None) -> dict:
    """`overrides` ({section: {key: value}}, None values ignored: command-line flags not given) over `data`."""
    for section, values in (overrides or {}).items():
        given, current = {k: v for k, v in values.items() if v is not None}, data.get(section) or {}
        if given and isinstance(current, dict):  # a section that is not a mapping is reported by build()
            data[section] = {**current, **given}
    return data


def load_pipeline(path: str | None = None, overrides: dict | None = None) -> PipelineSettings:
    """The YAML file's settings (defaults where it is silent), then `overrides`, all validated together."""
    data = load_yaml(path) if path else {}
    if "pairs" in data:
        raise UserError(f"{path} lists several pairs; `defusion-rt run --pipeline {path}` runs them (one pair's "
                        "settings are needed here)")
    return build(PipelineSettings, _override(data, overrides))


def is_multi(path: str | None) -> bool:
    return bool(path) and Path(path).is_file() and "pairs" in load_yaml(path)


def load_multi(path: str, overrides: dict | None = None) -> MultiSettings:
    """A `pairs:` file: fusion and run overrides apply once, sources/register/render overrides to every pair."""
    data = load_yaml(path)
    pairs = data.pop("pairs")
    if not isinstance(pairs, list) or not pairs:
        raise UserError(f"'pairs' in {path} must be a list of pairs, each a mapping with sources (and optionally "
                        "name, register, render)")
    shared = {k: v for k, v in (overrides or {}).items() if k in ("fusion", "run")}
    per_pair = {k: v for k, v in (overrides or {}).items() if k not in shared}
    s = build(MultiSettings, _override(data, shared))
    s.pairs = [build(PairSettings, _override(dict(p), per_pair) if isinstance(p, dict) else p, f"pairs[{i}].")
               for i, p in enumerate(pairs)]
    _check_pairs(s.pairs)
    return s


def _check_pairs(pairs: list[PairSettings]) -> None:
    """Names unique and usable in a title; no two pairs writing the same file or serving on the same port."""
    for i, p in enumerate(pairs):
        p.name = p.name or f"pair{i + 1}"
        if not re.fullmatch(r"[\w.-]+", p.name):
            raise UserError(f"pair name {p.name!r} may hold only letters, digits, '_', '.' and '-'; rename it")
    claimed: dict[str, str] = {}
    for p in pairs:
        outs = [p.render.record] if isinstance(p.render.record, str) else list(p.render.record)
        for what in [*outs, p.render.csv, p.render.serve and f"port {p.render.serve}", f"name {p.name}"]:
            if what and what in claimed:
                raise UserError(f"pairs {claimed[what]} and {p.name} both use {what}; give each pair its own")
            claimed[what] = p.name
