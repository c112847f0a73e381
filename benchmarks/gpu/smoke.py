"""The GPU smoke check (about 3 minutes on an H200): the CUDA tests, then the many-pairs benchmark, unpaced (how
many frames per second one engine fuses over N pairs) and paced (N pairs as live 30 FPS cameras: dropped or not).

    # on the GPU machine (device tool), after or instead of the kit; carry ["runs/gpu_data"] for the M3SVD clip:
    python benchmarks/gpu/smoke.py --out "$OUT"

Writes into --out: smoke_console.txt (every command and its output), streams_unpaced.json, streams_paced.json:
three files, within the device call's eight. Each step has its own time limit, so one that hangs costs only its
share. Without runs/gpu_data the built-in scene (640x480) stands in for the clip. `--device cpu` with small
numbers is the CPU dry run the test suite makes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "runs" / "gpu_data" / "clip"


def step(cmd: list[str], log, timeout: float) -> int:
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = 124
    log.write(f"-> rc {rc} in {time.monotonic() - t0:.0f} s\n")
    log.flush()
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="where the three files go ($OUT on the device machine)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--engines", default="compile:fp16", help="the one engine of the streams runs")
    ap.add_argument("--model", default="defusion_fast")
    ap.add_argument("--streams", default="1,4,16", help="pair counts of the unpaced run")
    ap.add_argument("--paced", default="16", help="pair counts of the paced (live) run")
    ap.add_argument("--frames", type=int, default=300, help="frames per pair")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m"]
    e2e = ["--e2e", f"{CLIP / 'ir.mp4'},{CLIP / 'vis.mp4'}"] if (CLIP / "ir.mp4").is_file() else []
    bench = [*py, "defusion_rt", "bench", "--device", args.device, "--model", args.model, "--engines", args.engines,
             "--e2e-frames", str(args.frames), *e2e]
    codes = {}
    with open(out / "smoke_console.txt", "w") as log:
        if not args.skip_tests:
            codes["tests"] = step([*py, "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py",
                                   "tests/test_multi.py", "tests/test_engines.py"], log, 90)
        codes["unpaced"] = step([*bench, "--streams", args.streams, "--json", str(out / "streams_unpaced.json")],
                                log, 150)
        codes["paced"] = step([*bench, "--streams", args.paced, "--paced", "--json",
                               str(out / "streams_paced.json")], log, 90)
        log.write(f"\nsmoke: {codes}\n")
    print(f"smoke: {codes}; console in {out / 'smoke_console.txt'}")
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
