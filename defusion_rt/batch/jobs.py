"""Batch jobs: which pairs to fuse (a manifest, or two folders paired by name), where each output goes, and how one
pair is fused. One pair is one `Pipeline` run, written to a temporary name and renamed when complete, so an output
that exists is whole: a rerun skips it and redoes anything left partial."""
from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml
from rich.console import Console

from ..config import build, yaml_problem
from ..errors import UserError
from ..imageio import IMAGE_EXTS
from ..pipeline import Pipeline, PipelineSettings

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".webm"}
PARTIAL = ".partial"   # x.partial.mp4 while being written, x.mp4 once complete


@dataclass
class Job:
    a: str
    b: str
    output: str
    options: dict = field(default_factory=dict)  # {section: {key: value}}, e.g. a calibration file per pair

    @property
    def name(self) -> str:
        return Path(self.output).name

    @property
    def partial(self) -> Path:
        out = Path(self.output)
        return out.with_name(out.stem + PARTIAL + out.suffix)

    def complete(self) -> bool:
        return Path(self.output).is_file()


def _stream_entries(folder: Path) -> dict[str, Path]:
    """Videos and frame folders in `folder`, by name without extension."""
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder}")
    return {p.stem if p.is_file() else p.name: p for p in sorted(folder.iterdir())
            if (p.is_file() and p.suffix.lower() in VIDEO_EXTS) or
            (p.is_dir() and any(q.suffix.lower() in IMAGE_EXTS for q in p.iterdir()))}


def jobs_from_folders(dir_a: Path, dir_b: Path, out: Path) -> tuple[list[Job], list[str]]:
    """Pairs of videos or frame folders with the same name in two folders; also the names found in one only."""
    a, b = _stream_entries(Path(dir_a)), _stream_entries(Path(dir_b))
    names = sorted(a.keys() & b.keys())
    if not names:
        raise UserError(f"no videos or frame folders with the same name in {dir_a} and {dir_b}; pairs are matched "
                        "by name (ir/clip1.mp4 with vis/clip1.mp4)")
    return [Job(str(a[n]), str(b[n]), str(Path(out) / f"{n}.mp4")) for n in names], sorted(a.keys() ^ b.keys())


def _options(row: dict, where: str, here: Path) -> dict:
    """Per-pair settings from a manifest row: `calibration` (a file relative to the manifest, or a registration
    method), or any `section.key` column (fusion.task, fusion.colour, ...). CSV text is read as YAML values."""
    options: dict = {}
    for key, value in row.items():
        if key in ("a", "b", "output") or value in (None, ""):
            continue
        value = yaml.safe_load(value) if isinstance(value, str) else value
        if key == "calibration" and str(value) not in ("none", "auto", "ecc", "features"):
            value = str(value if Path(str(value)).is_absolute() else here / str(value))
        section, _, name = ("register.method" if key == "calibration" else key).partition(".")
        if not name:
            raise UserError(f"{where}: unknown column '{key}'; use a, b, output, calibration or SECTION.KEY "
                            "(e.g. fusion.task)")
        options.setdefault(section, {})[name] = value
    return options


def jobs_from_manifest(path: Path, out: Path | None) -> list[Job]:
    """A CSV with a header, or a YAML list of mappings: a, b, optional output, calibration, SECTION.KEY options.
    Relative inputs are relative to the manifest; relative outputs to --out (default: the manifest's folder)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest not found: {path}")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        try:
            rows = yaml.safe_load(path.read_text()) or []
        except yaml.YAMLError as err:
            raise UserError(f"manifest {path} is not valid YAML: {yaml_problem(err)}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"manifest {path} must be a list of mappings with a, b and optional output")
    here, out = path.parent, Path(out) if out else path.parent
    jobs = []
    for i, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path.name} row {i}"
        if not row.get("a") or not row.get("b"):
            raise UserError(f"{where}: needs both a and b")
        a, b = (str(v) if ":" in str(v) or Path(str(v)).is_absolute() else str(here / str(v))
                for v in (row["a"], row["b"]))  # URLs, sample:... and absolute paths are kept as given
        output = Path(str(row.get("output") or f"{Path(a).stem}.mp4"))
        jobs.append(Job(a, b, str(output if output.is_absolute() else out / output), _options(row, where, here)))
    return jobs


def check_unique(jobs: list[Job]) -> None:
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.output in seen:
            raise UserError(f"two pairs write {job.output} ({seen[job.output].a} and {job.a}); give each an output")
        seen[job.output] = job


def settings_for(job: Job, base: PipelineSettings) -> PipelineSettings:
    """The base settings with this pair's options (validated like a pipeline file), sources and output."""
    data = dataclasses.asdict(base)
    for section, values in job.options.items():
        data[section] = {**data.get(section, {}), **values}  # an unknown section is named by build()
    s = build(PipelineSettings, data)
    s.sources.a, s.sources.b = job.a, job.b
    s.sources.mode, s.sources.paced = "recorded", False
    s.render.record, s.render.display = str(job.partial), False
    s.run.progress = False
    return s


def run_job(job: Job, base: PipelineSettings, engines: dict | None = None,
            on_frame: Callable[[], None] | None = None) -> dict:
    """Fuse one pair into job.output; returns its report row. A user's problem with this pair (an unreadable
    file, a registration that fails its check) is reported in the row; anything else is a bug and raises."""
    t0 = time.monotonic()
    row = dict(a=job.a, b=job.b, output=job.output, status="failed", frames=0, fps=0.0, seconds=0.0, error="")
    job.partial.unlink(missing_ok=True)  # a partial file from an interrupted run is redone
    try:
        s = settings_for(job, base)
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        engine = _engine(s, engines) if engines is not None else None
        summary = Pipeline(s, Console(quiet=True), engine=engine, on_frame=on_frame).run()
    except UserError as err:
        row.update(error=str(err), seconds=round(time.monotonic() - t0, 2))
        job.partial.unlink(missing_ok=True)
        return row
    row.update(frames=summary.fused, fps=round(summary.fps, 2), seconds=round(time.monotonic() - t0, 2))
    if summary.stopped_by == "signal":  # Ctrl-C or SIGTERM: the partial file stays (playable); a rerun redoes it
        row.update(status="interrupted", error="interrupted")
        return row
    if summary.stopped_by == "error" or not summary.fused:
        row["error"] = summary.message or "no frame could be fused"
        job.partial.unlink(missing_ok=True)
        return row
    job.partial.replace(job.output)  # complete: the output appears whole or not at all
    row.update(status="done", notes=summary.notes)
    return row


def _engine(s: PipelineSettings, engines: dict):
    """One engine per process and settings, reused across pairs (weights load and builds happen once)."""
    from ..fusion import make_engine
    f = s.fusion
    key = (f.method, f.model, f.engine, f.device, f.precision, f.weights, f.task)
    if key not in engines:
        engines[key] = make_engine(f)
    return engines[key]
