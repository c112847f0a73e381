"""`defusion-rt batch`: many recorded pairs, one fused video each, resumable; on one machine (`local.py`) or a Ray
cluster (`cluster.py`). What a pair is and how it is fused: `jobs.py`."""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..bench.telemetry import machine
from ..capture import open_source
from ..errors import UserError
from ..pipeline import PipelineSettings
from .jobs import Job, check_unique, jobs_from_folders, jobs_from_manifest, run_job

__all__ = ["Job", "jobs_from_folders", "jobs_from_manifest", "run_batch", "run_job"]


def _frames(job: Job) -> int | None:
    """Stream A's declared length, for the progress bar (None where unknown)."""
    try:
        src = open_source(job.a)
    except UserError:
        return None  # reported when the pair runs
    try:
        return src.info.frames
    finally:
        src.close()


def run_batch(jobs: list[Job], base: PipelineSettings, report: Path, workers: int = 1, ray: str | None = None,
              ray_cpus: float = 1.0, ray_gpus: float = 0.0, console: Console | None = None) -> dict:
    """Fuse every pair whose output is not complete yet; write and return the JSON report."""
    console = console or Console(stderr=True)
    check_unique(jobs)
    todo = [j for j in jobs if not j.complete()]
    console.print(f"{len(jobs)} pair(s): {len(jobs) - len(todo)} already complete, {len(todo)} to fuse"
                  + (f" on Ray ({ray})" if ray else f" with {workers} worker(s)" if workers > 1 else ""))
    counts = [_frames(j) for j in todo]
    total = sum(counts) if all(c is not None for c in counts) else None
    started = datetime.datetime.now()
    rows: list[dict] = []
    interrupted = False
    if not todo:
        pass  # nothing to schedule: no cluster is contacted
    elif ray:
        from .cluster import run_ray
        try:
            rows = run_ray(todo, base, ray, ray_cpus, ray_gpus, total, console)
        except KeyboardInterrupt:  # Ray cancels the driver's tasks when it disconnects; a rerun redoes them
            interrupted = True
    else:
        from .local import run_local
        rows, interrupted = run_local(todo, base, workers, total, console)
    skipped = [dict(a=j.a, b=j.b, output=j.output, status="complete before") for j in jobs if j not in todo]
    result = dict(created=started.isoformat(timespec="seconds"), command=" ".join(sys.argv), machine=machine(),
                  workers=workers, ray=ray, seconds=round((datetime.datetime.now() - started).total_seconds(), 1),
                  interrupted=interrupted, pairs=rows + skipped)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=1))
    print_report(result, console)
    console.print(f"report: {report}")
    return result


def print_report(result: dict, console: Console) -> None:
    t = Table(title="defusion-rt batch")
    for col in ("output", "status", "frames", "FPS", "seconds", "error"):
        t.add_column(col, justify="right" if col in ("frames", "FPS", "seconds") else "left")
    for r in result["pairs"]:
        t.add_row(Path(r["output"]).name, r["status"], str(r.get("frames", "")), str(r.get("fps", "")),
                  str(r.get("seconds", "")), r.get("error", ""))
    console.print(t)
