"""Live-mode latency: a recorded IR/visible pair played as two cameras would deliver it (paced at the sources'
frame rate, freshest-frame pairing, stale frames dropped), fused with `run`'s defaults, and the added latency from
capture to rendered frame measured per frame. Saves JSON with the machine it ran on.

    python benchmarks/live_latency.py [--a DIR_OR_VIDEO --b ... --fps 25 --model auto --engine auto]
    # default: the M3SVD clip 0111_1716 (640x480, 151 frames) from ../shared/data, delivered at 25 FPS
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "ir_vis_video" / "M3SVD"


def main() -> None:
    from rich.console import Console
    from defusion_rt.bench.telemetry import machine
    from defusion_rt.pipeline import Pipeline, PipelineSettings
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", default=str(CLIP / "ir" / "0111_1716.mp4"))
    p.add_argument("--b", default=str(CLIP / "vis" / "0111_1716.mp4"))
    p.add_argument("--fps", type=float, default=25.0, help="rate the sources deliver frames at")
    p.add_argument("--model", default="auto")
    p.add_argument("--engine", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--weights", default="", help="default: the shipped weights")
    p.add_argument("--json", default=str(ROOT / "runs" / "bench" / "live_latency.json"))
    args = p.parse_args()
    s = PipelineSettings()
    s.sources.a, s.sources.b, s.sources.fps = args.a, args.b, args.fps
    s.sources.mode, s.sources.paced = "live", True
    s.fusion.model, s.fusion.engine, s.fusion.precision = args.model, args.engine, args.precision
    s.fusion.weights = args.weights
    s.run.progress = False
    csv_path = Path(args.json).with_suffix(".csv")
    s.render.csv = str(csv_path)
    console = Console()
    pipeline = Pipeline(s, console)
    summary = pipeline.run()
    rows = list(csv.DictReader(csv_path.open()))
    total = np.array([float(r["total_ms"]) for r in rows])
    result = dict(created=datetime.datetime.now().isoformat(timespec="seconds"), command=" ".join(sys.argv),
                  machine=machine(), sources=[args.a, args.b], source_fps=args.fps, engine=summary.engine,
                  frames_in=[summary.frames_a, summary.frames_b], fused=summary.fused, dropped=summary.dropped,
                  added_latency_ms=dict(median=round(float(np.median(total)), 1),
                                        p95=round(float(np.percentile(total, 95)), 1),
                                        max=round(float(total.max()), 1)),
                  stage_latency_ms={k: {m: round(v, 1) for m, v in d.items()} for k, d in summary.latency_ms.items()},
                  stopped_by=summary.stopped_by)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    console.print(result)
    console.print(f"results: {args.json} (per-frame CSV: {csv_path})")


if __name__ == "__main__":
    main()
