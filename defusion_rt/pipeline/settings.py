"""Pipeline settings: one section per stage (the keys of a pipelines/*.yaml file), each defined beside the stage
it configures; every key and every enum value is validated, with a did-you-mean for typos."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..capture import SourcesSettings
from ..config import build, load_yaml
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


def load_pipeline(path: str | None = None, overrides: dict | None = None) -> PipelineSettings:
    """The YAML file's settings (defaults where it is silent), then `overrides` ({section: {key: value}}, None
    values ignored: command-line flags not given), all validated together."""
    data = load_yaml(path) if path else {}
    for section, values in (overrides or {}).items():
        given, current = {k: v for k, v in values.items() if v is not None}, data.get(section) or {}
        if given and isinstance(current, dict):  # a section that is not a mapping is reported by build()
            data[section] = {**current, **given}
    return build(PipelineSettings, data)
