"""Batch throughput: pairs per hour and frames per second of `defusion-rt batch` over the M3SVD clip pairs, with 1
and 2 worker processes and on a local Ray instance, for the real-time network and for `--method average`; the
scaling efficiency against one worker and what each pair costs beyond its own fusing (start-up, scheduling).
Saves JSON with the machine it ran on.

    python benchmarks/batch_scaling.py [--a DIR --b DIR] [--methods defusion,average] [--json PATH]
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "ir_vis_video" / "M3SVD"
CONFIGS = [("1 worker", ["--workers", "1"], 1), ("2 workers", ["--workers", "2"], 2), ("Ray local", ["--ray", "local"], 2)]


def run(a: str, b: str, method: str, flags: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "defusion_rt", "batch", "--a", a, "--b", b, "--out", tmp, "--method", method,
               *flags]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
        return dict(wall_s=wall, report=json.loads((Path(tmp) / "batch_report.json").read_text()))


def per_pair_cost(n: int) -> list[dict]:
    """What a pair costs beyond fusing it: `n` pairs of two 64x48 frames (fusing them takes next to nothing), the
    whole command timed, minus a one-pair run (interpreter, imports, Ray's start), divided by n - 1."""
    import cv2
    import numpy as np
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("a", "b"):
            for i in range(n):
                (Path(tmp) / side / f"p{i:03d}").mkdir(parents=True)
                for k in range(2):
                    cv2.imwrite(str(Path(tmp) / side / f"p{i:03d}" / f"{k:06d}.png"), np.full((48, 64, 3), 40 * k, np.uint8))
        one = Path(tmp) / "one"
        for side in ("a", "b"):
            (one / side).mkdir(parents=True)
            (one / side / "p000").symlink_to(Path(tmp) / side / "p000")
        for name, flags, _ in CONFIGS:
            many = run(str(Path(tmp) / "a"), str(Path(tmp) / "b"), "average", flags)["wall_s"]
            single = run(str(one / "a"), str(one / "b"), "average", flags)["wall_s"]
            out.append(dict(config=name, pairs=n, wall_s=round(many, 2), one_pair_wall_s=round(single, 2),
                            s_per_extra_pair=round((many - single) / (n - 1), 3)))
            print(out[-1], flush=True)
    return out


def main() -> None:
    from defusion_rt.bench.telemetry import machine
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", default=str(CLIPS / "ir"))
    p.add_argument("--b", default=str(CLIPS / "vis"))
    p.add_argument("--methods", default="defusion,average")
    p.add_argument("--json", default=str(ROOT / "runs" / "bench" / "batch_scaling.json"))
    p.add_argument("--tiny", type=int, default=16, help="pairs of 2 tiny frames for the per-pair cost")
    args = p.parse_args()
    rows = []
    for method in args.methods.split(","):
        base = None
        for name, flags, workers in CONFIGS:
            r = run(args.a, args.b, method, flags)
            pairs = [x for x in r["report"]["pairs"] if x["status"] == "done"]
            frames, busy = sum(x["frames"] for x in pairs), sum(x["seconds"] for x in pairs)
            row = dict(method=method, config=name, workers=workers, pairs=len(pairs), frames=frames,
                       wall_s=round(r["wall_s"], 1), pairs_per_hour=round(3600 * len(pairs) / r["wall_s"], 1),
                       fps=round(frames / r["wall_s"], 1),
                       # wall time not spent fusing a pair in some worker: interpreter and engine start-up,
                       # Ray's start and scheduling, the driver's own work; per pair
                       overhead_s_per_pair=round((r["wall_s"] - busy / workers) / len(pairs), 2))
            base = base or row
            row["speedup"] = round(base["wall_s"] / row["wall_s"], 2)
            row["efficiency"] = round(row["speedup"] / workers, 2)
            rows.append(row)
            print(row, flush=True)
    result = dict(created=datetime.datetime.now().isoformat(timespec="seconds"), command=" ".join(sys.argv),
                  machine=machine(), sources=[args.a, args.b], rows=rows, per_pair_cost=per_pair_cost(args.tiny))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
