"""Copy a finished training run's record into benchmarks/training/: its resolved config, log, validation curve and
loss plot, plus run.json with the facts read from the files (start and end from their times, iterations from the
log) and the machine it ran on, so model cards never carry typed-in numbers.

    python benchmarks/training/record_run.py runs/fast_cud benchmarks/training/fast/cud \\
        --recipe configs/fast.yaml --command "defusion-rt train ..."
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FILES = ("config.yaml", "log.csv", "val.csv", "val.png", "loss.png")


def _born(path: Path) -> float:
    """Creation time where the file system keeps it (GNU stat %W), else the earliest of the run's file times."""
    out = subprocess.run(["stat", "-c", "%W", str(path)], capture_output=True, text=True)
    born = float(out.stdout.strip() or 0) if out.returncode == 0 else 0.0
    return born or min(p.stat().st_mtime for p in path.parent.iterdir())


def main() -> None:
    from defusion_rt.bench.telemetry import machine
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--recipe", required=True, help="the config file the run used")
    p.add_argument("--command", required=True, help="the command line that made the run")
    p.add_argument("--note", default="", help="anything a reader must know (shared cores, a stop)")
    args = p.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (args.run / name).is_file():
            shutil.copyfile(args.run / name, args.dest / name)
    rows = list(csv.DictReader((args.run / "log.csv").open()))
    start = _born(args.run / "log.csv")
    end = (args.run / "model.pt").stat().st_mtime
    m = machine()
    stamp = lambda t: datetime.datetime.fromtimestamp(t).isoformat(timespec="seconds")  # noqa: E731
    record = dict(recipe=args.recipe, command=args.command, started=stamp(start), ended=stamp(end),
                  minutes=round((end - start) / 60, 1), iterations=int(rows[-1]["iteration"]),
                  samples=int(rows[-1]["seen"]), hardware=f"{m['cpu']} ({m['cpu_cores']} cores, bf16: {m['cpu_bf16']}),"
                  f" torch {m['versions'].get('torch')}", note=args.note)
    (args.dest / "run.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
