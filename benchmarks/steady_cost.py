"""What steadying the fused video (fusion/steady.py) costs: per-frame quality and time.

On every clip pair, every `--every`-th frame is scored (Qabf, MI, VIF, as `evaluate` does) as the network fused
it and as the steadied video shows it, and the flicker of both videos is measured alongside; then the stage is
timed on 640x480 uint8 frames, as the pipeline runs it. `--compare LEAK:STALE:MEMORY ...` adds videos steadied with
those catch-up settings side by side on the same fused frames (steady.py; 1:16:8 was its default until 2026-12-01,
1:16:1 before that); `--weights` scores other IR-visible weights; `--no-timing` skips the timing.

    D=../shared/data/ir_vis_video/M3SVD
    python benchmarks/steady_cost.py --a $D/ir --b $D/vis --json benchmarks/results/steady_cost_amd-epyc-2c.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from defusion_rt.bench.telemetry import machine
from defusion_rt.errors import UserError
from defusion_rt.evaluate import _methods, clip_frames, steadied, video_pairs
from defusion_rt.fusion.steady import Steady
from defusion_rt.metrics import score
from defusion_rt.metrics.temporal import Flicker

METRICS = ("Qabf", "MI", "VIF")


def clip_scores(net, va: str, vb: str, frames: int, every: int, compare: tuple[tuple[int, ...], ...] = ()) -> dict:
    steadies = {"steady": Steady(net.grey)}
    for leak, stale, memory in compare:
        steadies[f"steady_{leak}:{stale}:{memory}"] = Steady(net.grey, leak=leak, stale=stale, memory=memory)
    flicker = {k: Flicker() for k in ("per_frame", *steadies)}
    scores: dict[str, list] = {k: [] for k in flicker}
    for i, (a, b) in enumerate(clip_frames(va, vb, frames)):
        fused = net(a, b)
        outs = dict(per_frame=fused) | {k: steadied(st, a, b, fused) for k, st in steadies.items()}
        for k, out in outs.items():
            flicker[k].add(a, b, out)
            if i % every == every - 1:
                s = score(a, b, np.clip(out, 0, 1), "ir-vis")
                scores[k].append([s[m] for m in METRICS])
    # a clip shorter than `every` frames gives flicker only
    return {k: dict(flicker=flicker[k].result()["flicker"],
                    **(dict(zip(METRICS, np.mean(scores[k], 0).tolist())) if scores[k] else {})) for k in flicker}


def time_stage(grey: bool, size=(640, 480), repeats: int = 100) -> float:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (size[1], size[0], 3), np.uint8) for _ in range(4)]
    steady, times = Steady(grey), []
    steady(*frames[:3])
    for i in range(repeats):
        t0 = time.perf_counter()
        steady(frames[i % 2], frames[i % 2 + 1], frames[i % 2 + 2])
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def catch_up(spec: str) -> tuple[int, int, int]:
    """LEAK:STALE:MEMORY, three whole numbers (levels, levels, frames), memory at least 1."""
    parts = spec.split(":")
    if len(parts) != 3 or not all(x.isdigit() for x in parts) or int(parts[2]) < 1:
        raise argparse.ArgumentTypeError(f"{spec!r} is not LEAK:STALE:MEMORY, e.g. 1:16:8")
    return tuple(map(int, parts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="folder of IR clips")
    p.add_argument("--b", required=True, help="folder of visible clips, same names")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--every", type=int, default=25, help="score every N-th frame")
    p.add_argument("--compare", nargs="*", type=catch_up, default=[], metavar="LEAK:STALE:MEMORY",
                   help="catch-up settings to steady with side by side (levels, levels, frames)")
    p.add_argument("--weights", help="IR-visible weights of defusion_fast (default: shipped)")
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()
    try:
        net = _methods(["defusion_fast"], args.weights, "cpu", "fp32", "ir-vis")["defusion_fast"]
        clips = {name: clip_scores(net, va, vb, args.frames, args.every, tuple(args.compare))
                 for name, va, vb in video_pairs(args.a, args.b)}
    except UserError as err:  # a missing clip or weight file: one line, as the CLI says it
        p.exit(2, f"{p.prog}: error: {err}\n")
    first = next(iter(clips.values()))
    mean = {k: {m: float(np.mean([c[k][m] for c in clips.values()])) for m in first[k]} for k in first}
    result = dict(machine=machine(), command=" ".join(["python", *sys.argv]), network="defusion_fast fp32",
                  weights=args.weights or "shipped", frames=args.frames, scored_every=args.every, clips=clips,
                  mean=mean)
    if not args.no_timing:
        result["steady_ms_640x480"] = {k: round(time_stage(k == "grey"), 2) for k in ("grey", "colour")}
    print(json.dumps(dict(mean=mean, steady_ms=result.get("steady_ms_640x480")), indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
