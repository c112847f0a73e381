"""What the per-task fused heads cost (issue #22): the real-time network with each shipped weight file (the affine
head with the detail pick of multi-exposure, the difference term of IR-visible, the decision map of multi-focus)
and the plain affine head (the multi-exposure weights without their pick) fusing the same 640x480 RGB pair, each
engine and precision side by side, interleaved, medians of the fuse call.

    python benchmarks/fused_head_cost.py --out benchmarks/results/fused_head_cost_amd-epyc-2c.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.engines import create_engine  # noqa: E402
from defusion_rt.fusion import Fuser  # noqa: E402
from defusion_rt.model import create_model, default_weights, export_weights  # noqa: E402
from defusion_rt.model.fast import DeFusionFast, FastConfig  # noqa: E402


def weight_files(tmp: str) -> dict[str, str]:
    """The heads to compare and their weight files; the first is the baseline of the ratios."""
    me = create_model("defusion_fast", weights=default_weights("defusion_fast", "multi-exposure"))
    affine = DeFusionFast(FastConfig(me.cfg.width))
    affine.load_state_dict({k: v for k, v in me.state_dict().items() if not k.startswith("head_pick.")})
    return {"affine": str(export_weights(affine, f"{tmp}/affine.pt")),
            **{head: str(default_weights("defusion_fast", task)) for head, task in (
                ("affine + detail pick (multi-exposure)", "multi-exposure"), ("difference term (ir-vis)", "ir-vis"),
                ("decision map (multi-focus)", "multi-focus"))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="eager:fp32,compile:bf16")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    pair = (torch.rand(1, 3, 480, 640), torch.rand(1, 3, 480, 640))
    rows, tmp = [], tempfile.mkdtemp()
    heads = weight_files(tmp)
    for spec in args.engines.split(","):
        name, precision = spec.split(":")
        fusers = {head: Fuser(create_engine(name, "cpu", precision, model_name="defusion_fast", weights=w),
                              "multi-exposure") for head, w in heads.items()}
        times = {head: [] for head in fusers}
        with torch.inference_mode():
            for fuser in fusers.values():  # build and warm up
                for _ in range(3):
                    fuser.fuse_tensors(*pair)
            for _ in range(args.reps):  # interleaved: a busy moment costs every head alike
                for head, fuser in fusers.items():
                    t = time.perf_counter()
                    fuser.fuse_tensors(*pair)
                    times[head].append(1000 * (time.perf_counter() - t))
        base = float(np.median(times["affine"]))
        for head, ts in times.items():
            ms = float(np.median(ts))
            rows.append(dict(engine=name, precision=precision, head=head, median_ms=round(ms, 2),
                             vs_affine=round(ms / base, 3)))
            print(rows[-1], flush=True)
    out = dict(benchmark="fused_head_cost", model="defusion_fast", size="640x480", reps=args.reps,
               machine=machine(), command=" ".join(sys.argv), results=rows)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
