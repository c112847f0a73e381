"""IR-visible frames fused as one grey channel against three equal channels (issue #21): the network's first
convolution with its weights summed over the input channels (FusedOnly.grey) against the same network fed the
expanded frame, each engine and precision side by side, interleaved, medians of the fuse call at 640x480.

    python benchmarks/grey_input.py --out benchmarks/results/grey_input_amd-epyc-2c.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.engines import create_engine  # noqa: E402
from defusion_rt.fusion import Fuser  # noqa: E402


def timed(fn, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="eager:fp32,compile:bf16,openvino:fp32")
    ap.add_argument("--model", default="defusion_fast")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    grey = (torch.rand(1, 1, 480, 640), torch.rand(1, 1, 480, 640))
    three = tuple(x.repeat(1, 3, 1, 1) for x in grey)  # what the engine was given before: the frame expanded
    rows = []
    for spec in args.engines.split(","):
        name, precision = spec.split(":")
        fuser = Fuser(create_engine(name, "cpu", precision, model_name=args.model, task="ir-vis"), "ir-vis")
        with torch.inference_mode():
            for x in (grey, three):  # build both shapes and warm up
                for _ in range(3):
                    fuser.fuse_tensors(*x)
            diff = float((fuser.fuse_tensors(*grey) - fuser.fuse_tensors(*three)).abs().max())
            t1, t3 = [], []
            for _ in range(args.reps):  # interleaved: a busy moment costs both forms alike
                t1 += timed(lambda: fuser.fuse_tensors(*grey), 1)
                t3 += timed(lambda: fuser.fuse_tensors(*three), 1)
        m1, m3 = float(np.median(t1)), float(np.median(t3))
        rows.append(dict(engine=name, precision=precision, grey_ms=round(m1, 2), three_ms=round(m3, 2),
                         speedup=round(m3 / m1, 3), max_abs_diff=diff))
        print(rows[-1], flush=True)
    out = dict(benchmark="grey_input", model=args.model, size="640x480", reps=args.reps, machine=machine(),
               command=" ".join(sys.argv), results=rows)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
