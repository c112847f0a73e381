"""The paper network's split-attention forms, side by side in one run: the textbook form the weights were
trained with (reshape to (B, radix, C, H, W), sum, softmax, multiply, sum) against the shipped forward
(`SplitAttn`: sigmoid of the logit difference, `x2 + a * (x1 - x2)`) with its 3x3 conv grouped or dense
(block-diagonal weight). Same weights and input; rounds interleave the forms so machine drift hits all alike.

    python benchmarks/split_attention.py --device cpu --engines eager:fp32,eager:bf16,compile:bf16 \
        --json benchmarks/results/split_attention_amd-epyc-2c.json
    python benchmarks/split_attention.py --device cuda --engines eager:fp16,compile:fp16 --forms textbook,grouped,dense

`textbook_forward` is also the reference of tests/test_split_attention.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defusion_rt.bench.matrix import _frame, _sync, rel_err  # noqa: E402
from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.engines import create_engine  # noqa: E402
from defusion_rt.model import create_model  # noqa: E402
from defusion_rt.model.layers import SplitAttn  # noqa: E402


def textbook_forward(self: SplitAttn, x: torch.Tensor) -> torch.Tensor:
    """Split attention as first written (and as ResNeSt writes it), on SplitAttn's own parameters."""
    b, _, h, w = x.shape
    x = F.relu(self.conv(x)).reshape(b, 2, -1, h, w)  # (B, radix, C, H, W)
    gap = x.sum(dim=1).mean(dim=(2, 3), keepdim=True)
    attn = self.fc2(F.relu(self.fc1(gap))).reshape(b, 2, -1, 1, 1).softmax(dim=1)
    return (x * attn).sum(dim=1)


@contextmanager
def form(name: str, device_type: str):
    """Run SplitAttn as `name`: textbook, grouped or dense."""
    forward, conv_form = SplitAttn.forward, dict(SplitAttn.CONV_FORM)
    if name == "textbook":
        SplitAttn.forward = textbook_forward
    else:
        SplitAttn.CONV_FORM[device_type] = name
    try:
        yield
    finally:
        SplitAttn.forward = forward
        SplitAttn.CONV_FORM.clear()
        SplitAttn.CONV_FORM.update(conv_form)


def measure(engine_spec: str, forms: list[str], device: torch.device, size, rounds: int, reps: int,
            reference: torch.Tensor) -> list[dict]:
    name, precision = engine_spec.split(":")
    model = create_model("defusion", pretrained=True)
    a, b = _frame(size, device)
    engines, t_build = {}, {}
    for f in forms:
        with form(f, device.type):
            t0 = time.perf_counter()
            engines[f] = create_engine(name, str(device), precision, model=model)
            engines[f](a, b)  # build (compile) and warm up in this form
            _sync(device)
            t_build[f] = time.perf_counter() - t0
    times = {f: [] for f in forms}
    for _ in range(rounds):
        for f in forms:
            with form(f, device.type):
                for _ in range(reps):
                    t0 = time.perf_counter()
                    engines[f](a, b)
                    _sync(device)
                    times[f].append(1000 * (time.perf_counter() - t0))
    rows = []
    for f in forms:
        with form(f, device.type):
            out = engines[f](a, b)
        ms = statistics.median(times[f])
        rows.append(dict(engine=name, precision=precision, form=f, width=size[0], height=size[1],
                         median_ms=round(ms, 2), fps=round(1000 / ms, 2), samples=len(times[f]),
                         build_s=round(t_build[f], 1), rel_err_vs_textbook_fp32=rel_err(out, reference)))
        print(f"{name} {precision} {f}: {ms:.1f} ms ({1000 / ms:.2f} FPS), rel. err {rows[-1]['rel_err_vs_textbook_fp32']:.1e}",
              flush=True)
    base = rows[0]["median_ms"]
    for r in rows:
        r["speedup_vs_first_form"] = round(base / r["median_ms"], 3)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--engines", default="eager:fp32,eager:bf16,compile:bf16")
    p.add_argument("--forms", default="textbook,grouped,dense")
    p.add_argument("--size", default="640x480")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--json", help="where to save the results")
    args = p.parse_args()
    device = torch.device(args.device)
    size = tuple(int(v) for v in args.size.split("x"))
    forms = args.forms.split(",")
    with form("textbook", device.type), torch.inference_mode():
        ref = create_engine("eager", str(device), "fp32", model=create_model("defusion", pretrained=True))
        reference = ref(*_frame(size, device))
    rows = []
    for spec in args.engines.split(","):
        rows += measure(spec, forms, device, size, args.rounds, args.reps, reference)
        if args.json:  # saved after every engine: a run cut short keeps what it measured
            result = dict(created=time.strftime("%Y-%m-%dT%H:%M:%S"), command=" ".join(sys.argv),
                          machine=machine(), device=device.type, model="defusion", records=rows)
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
