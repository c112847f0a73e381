"""`defusion-rt bench`: engines x precisions x resolutions x batch sizes on one device, each checked against fp32
eager on a realistic frame, warmed up, then timed within a time budget (CUDA events on the GPU); plus the
end-to-end pipeline on a recorded pair and, on CUDA, the gain of stream overlap over strict sequence."""
from __future__ import annotations

import datetime
import json
import re
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ..engines import create_engine
from ..engines.eager import EagerEngine
from ..engines.padding import pad
from ..errors import UserError
from ..model import create_model
from ..outputs import written
from ..samples import sample_pair
from ..engines.cpu import class_label
from .telemetry import GpuSampler, machine


@dataclass
class BenchSettings:
    device: str = "cpu"
    model: str = "defusion"        # registered variant
    # An entry ENGINE runs at every precision; ENGINE:PRECISION at that one only (builds are slow: choose).
    engines: list = field(default_factory=lambda: ["eager", "torchscript", "compile", "export", "onnx", "openvino",
                                                   "openvino:int8"])
    precisions: list = field(default_factory=lambda: ["fp32", "bf16"])
    sizes: list = field(default_factory=lambda: [(256, 256), (640, 480), (1280, 720)])
    batches: list = field(default_factory=lambda: [1])
    budget_s: float = 8.0          # timed seconds per configuration (after warm-up)
    warmup: int = 2
    weights: str | None = None     # default: shipped weights (random weights when none are shipped)
    e2e_frames: int = 60
    e2e: tuple | None = None       # (source A, source B) for the end-to-end run
    e2e_methods: list = field(default_factory=lambda: ["average"])  # classical methods run end to end too: the
                                   # pipeline's own cost (decode, pair, convert, overlay, encode) with no network
    partial: str | None = None     # rewrite this JSON after every record, so a run cut short keeps its results


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device, budget_s: float, warmup: int, min_iters: int = 3, max_iters: int = 500) -> list[float]:
    """Latencies in ms of repeated fn() calls: warm-up first, then until the budget is spent."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times, start = [], time.perf_counter()
    while len(times) < min_iters or (time.perf_counter() - start < budget_s and len(times) < max_iters):
        if device.type == "cuda":
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            fn()
            t1.record()
            t1.synchronize()
            times.append(t0.elapsed_time(t1))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t0))
    return times


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.float().clamp(0, 1), ref.float().clamp(0, 1)
    return float((x - ref).norm() / ref.norm().clamp_min(1e-12))


def _frame(size, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A realistic pair at `size`, padded as at inference (16 px reflect, multiple of 8)."""
    ir, vis = sample_pair(5, size)
    t = [pad(torch.from_numpy(v.transpose(2, 0, 1))[None].to(device))[0] for v in (ir, vis)]
    return t[0], t[1]


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def run_matrix(s: BenchSettings, console: Console) -> dict:
    device = torch.device(s.device if s.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but this torch has no CUDA device")
    try:
        model = create_model(s.model, weights=s.weights, pretrained=s.weights is None)
        weights = s.weights or "shipped"
    except UserError:
        if s.weights:  # a bad --weights file is the user's error, not a reason to time random weights
            raise
        torch.manual_seed(0)
        model, weights = create_model(s.model), "random (no weights found)"
    sampler = GpuSampler()
    sampler.start()
    records = []
    for w, h in s.sizes:
        a1, b1 = _frame((w, h), device)
        baseline = EagerEngine(model, device, "fp32", channels_last=False)  # the reference: fp32, NCHW
        ref = baseline(a1, b1)
        configs = [("eager", "fp32", baseline, "contiguous")] + \
            [(e.partition(":")[0], p, None, "channels_last") for e in s.engines
             for p in ([e.partition(":")[2]] if ":" in e else s.precisions)]
        for name, precision, engine, fmt in configs:
            rec = dict(model=s.model, engine=name, precision=precision, device=device.type, width=w, height=h,
                       input_shape=list(a1.shape[-2:]), memory_format=fmt, baseline=engine is baseline)
            if name == "onnx":
                rec["memory_format"] = "contiguous"
            try:
                t0 = time.perf_counter()
                engine = engine or create_engine(name, str(device), precision, model=model)
                if hasattr(engine, "prepare"):
                    engine.prepare(tuple(a1.shape))
                rec["build_s"] = round(time.perf_counter() - t0, 2)
                out = engine(a1, b1)
                rec["rel_err_vs_fp32"] = rel_err(out, ref)
                rec["finite"] = bool(torch.isfinite(out).all())
            except Exception as err:  # one engine failing to build must not end the matrix
                msg = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {str(err)[:200]}"
                console.print(f"[yellow]skip {name} {precision} {w}x{h}: {msg}")
                records.append(dict(rec, skipped=msg))
                continue
            for batch in s.batches:
                a, b = a1.expand(batch, -1, -1, -1).contiguous(), b1.expand(batch, -1, -1, -1).contiguous()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                try:
                    times = time_calls(lambda: engine(a, b), device, s.budget_s, s.warmup)
                except (UserError, RuntimeError) as err:  # e.g. out of memory at a large batch
                    records.append(dict(rec, batch=batch, skipped=f"{type(err).__name__}: {str(err)[:160]}"))
                    continue
                med = float(np.median(times))
                r = dict(rec, batch=batch, latency_ms_median=round(med, 3),
                         latency_ms_p95=round(float(np.percentile(times, 95)), 3), runs=len(times),
                         fps=round(1000 * batch / med, 3), peak_mem_mb=round(_peak_mb(device), 1))
                records.append(r)
                _save_partial(s, device, weights, records)
                console.print(f"{name:12s} {precision:5s} {w}x{h} b{batch}: {r['fps']:9.2f} FPS, median "
                              f"{med:9.2f} ms, err {rec['rel_err_vs_fp32']:.2e}")
    _add_speedups(records)
    result = dict(created=datetime.datetime.now().isoformat(timespec="seconds"), command=" ".join(sys.argv),
                  model=s.model, weights=weights, machine=machine(), device=device.type, records=records)
    w, h = (640, 480) if (640, 480) in [tuple(x) for x in s.sizes] else tuple(s.sizes[0])
    best = best_record(records, w, h)
    if best:
        result["e2e"] = end_to_end(best, s, (w, h), s.weights, console)
        if device.type == "cuda":
            result["stream_overlap"] = stream_overlap(best, model, device, s)
    result["e2e_classical"] = [end_to_end(dict(engine=m, precision="fp32", device=device.type), s, (w, h), None,
                                          console, method=m) for m in s.e2e_methods]
    result["gpu_telemetry"] = sampler.stop()
    return result


def _save_partial(s: BenchSettings, device, weights: str, records: list[dict]) -> None:
    if s.partial:
        tmp = Path(s.partial).with_suffix(".tmp")
        with written(s.partial, "results"):
            tmp.write_text(json.dumps(dict(partial=True, weights=weights, machine=machine(), device=device.type,
                                           records=records), indent=1))
            tmp.replace(s.partial)


def _add_speedups(records: list[dict]) -> None:
    """Each record's FPS relative to fp32 NCHW eager at the same size and batch, measured in the same run."""
    base = {(r["width"], r["height"], r["batch"]): r["fps"] for r in records if r.get("baseline") and "fps" in r}
    for r in records:
        key = (r["width"], r["height"], r.get("batch"))
        if "fps" in r and key in base:
            r["speedup_vs_fp32_eager"] = round(r["fps"] / base[key], 2)


# int8 is judged by the fusion metrics when it is made (`quantize` holds Qabf on validation pairs; evaluate reports
# Qabf, MI and VIF), so its tolerance on the bench's synthetic frame is looser than float's.
TOLERANCE = {"int8": 5e-2}


def best_record(records, w, h, tol: float = 1e-2) -> dict | None:
    """The fastest batch-1 configuration at w x h whose output stays within `tol` of fp32 (int8: TOLERANCE)."""
    ok = [r for r in records if r.get("fps") and r["width"] == w and r["height"] == h and r["batch"] == 1
          and r.get("finite") and r.get("rel_err_vs_fp32", 1) < TOLERANCE.get(r["precision"], tol)]
    return max(ok, key=lambda r: r["fps"]) if ok else None


def end_to_end(best: dict, s: BenchSettings, size: tuple[int, int], weights_path, console: Console,
               method: str = "defusion") -> dict:
    """Decode, register (a calibration file), fuse and encode a recorded pair: the network with the best engine, or
    a classical `method`. Without --e2e the built-in scene is written as two videos at `size`."""
    from ..pipeline import Pipeline, PipelineSettings
    from ..register import Registration
    p = PipelineSettings()
    with tempfile.TemporaryDirectory() as tmp:
        if s.e2e:
            p.sources.a, p.sources.b = s.e2e
        else:
            p.sources.a, p.sources.b = _sample_videos(Path(tmp), s.e2e_frames, size)
        src_size = _video_size(p.sources.a)
        p.register.method = str(Registration(_rig_matrix(src_size), src_size, src_size).save(Path(tmp) / "rig.yaml"))
        p.register.fov = "pad"
        p.fusion.method = method
        if method == "defusion":
            p.fusion.engine, p.fusion.precision, p.fusion.device = best["engine"], best["precision"], best["device"]
            p.fusion.weights, p.fusion.model = weights_path or "", s.model
        p.fusion.batch = 1
        p.render.record = str(Path(tmp) / "e2e.mp4")
        p.run.max_frames, p.run.progress = s.e2e_frames, False
        summary = Pipeline(p, console).run()
    name = s.model if method == "defusion" else method
    console.print(f"end to end, {name} {best['engine']} {best['precision']}, {src_size[0]}x{src_size[1]}: "
                  f"{summary.fps:.2f} FPS over {summary.fused} frames")
    return dict(model=name, engine=best["engine"], precision=best["precision"], sources=[p.sources.a, p.sources.b],
                width=src_size[0], height=src_size[1], frames=summary.fused, fps=round(summary.fps, 3),
                latency_ms={k: {m: round(v, 2) for m, v in d.items()} for k, d in summary.latency_ms.items()},
                codec=summary.codec, stopped_by=summary.stopped_by)


def _rig_matrix(size: tuple[int, int]) -> np.ndarray:
    """A calibration like a real side-by-side rig's (0.5 degrees, 1% scale, a few pixels' shift), so every frame
    pays for the warp; the identity would skip it. Run with fov `pad`, the fused size stays the source size."""
    import cv2
    w, h = size
    m = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.5, 1.01), [0, 0, 1]])
    m[:2, 2] += np.array([4.0, -3.0]) * w / 640
    return m


def _video_size(spec: str) -> tuple[int, int]:
    from ..capture import open_source
    src = open_source(spec)
    size = src.info.size
    src.close()
    return size


def _sample_videos(folder: Path, frames: int, size: tuple[int, int]) -> tuple[str, str]:
    """The built-in scene written as two MP4 files (so decoding is part of the measurement)."""
    import cv2
    paths = []
    for i, which in enumerate(("ir", "vis")):
        path = folder / f"{which}.mp4"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
        for k in range(frames):
            w.write((255 * sample_pair(k, size)[i][..., ::-1]).astype(np.uint8))
        w.release()
        paths.append(str(path))
    return paths[0], paths[1]


def stream_overlap(best: dict, model, device, s: BenchSettings, frames: int = 120) -> dict:
    """Frames/s of the best engine fed uint8 frames of its size: three in flight (overlapped) vs one (sequence)."""
    from ..fusion import StreamedFuser
    from ..fusion import Fuser
    engine = create_engine(best["engine"], str(device), best["precision"], model=model)
    fuser = Fuser(engine, "ir-vis")
    frame = [(255 * np.random.default_rng(0).random((best["height"], best["width"], 3))).astype(np.uint8)]
    out = {}
    for depth in (1, 3):
        sf = StreamedFuser(fuser, depth)
        for _ in range(5):
            sf.submit(frame, frame)
        sf.flush()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(frames):
            sf.submit(frame, frame)
        sf.flush()
        _sync(device)
        out[f"depth{depth}_fps"] = round(frames / (time.perf_counter() - t0), 2)
    out["gain"] = round(out["depth3_fps"] / out["depth1_fps"], 3)
    return out


def profile(s: BenchSettings, engine_name: str, precision: str, size: tuple[int, int], rows: int = 30) -> tuple[str, dict]:
    """torch.profiler of one forward pass (after a warm-up call), sorted by self time per operator: the table as
    text, and its top rows as a dict for JSON (so every run's profile can be compared by a script)."""
    device = torch.device(s.device if s.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    model = create_model(s.model, weights=s.weights, pretrained=s.weights is None)
    engine = create_engine(engine_name, str(device), precision, model=model,
                           **({"channels_last": False} if engine_name == "eager-nchw" else {})) \
        if engine_name != "eager-nchw" else EagerEngine(model, device, precision, channels_last=False)
    a, b = _frame(size, device)
    engine(a, b)
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        engine(a, b)
        _sync(device)
    head = (f"profile: {engine_name} {precision} {size[0]}x{size[1]} (input {tuple(a.shape)}) on {device_slug_for(device)}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    return head + averages.table(sort_by=sort, row_limit=rows), _profile_rows(averages, device, rows) | dict(
        engine=engine_name, precision=precision, size=list(size), input=list(a.shape), model=s.model,
        machine=machine())


def _profile_rows(averages, device: torch.device, rows: int) -> dict:
    """Operators by self time on the device that ran them (CUDA time on a GPU), with their share of the total."""
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    ops = [e for e in averages if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in ops) or 1.0
    ops.sort(key=lambda e: -getattr(e, attr))
    return dict(time=attr, total_us=round(total, 1), ops=[
        dict(name=e.key, calls=e.count, self_us=round(getattr(e, attr), 1), share=round(getattr(e, attr) / total, 4))
        for e in ops[:rows]])


def device_slug_for(device: torch.device) -> str:
    return device_slug(dict(machine=machine(), device=device.type))


def device_slug(result: dict) -> str:
    """The device's name for files; a CPU whose ISA was capped names the class it emulated."""
    m = result["machine"]
    name = m["gpu"]["name"] if result["device"] == "cuda" and "gpu" in m else f"{m['cpu']}-{m['cpu_cores']}c"
    if result["device"] != "cuda" and "emulated" in class_label(m):
        name += f"-{m['cpu_class']}-emulated"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def save(result: dict, folder: Path) -> Path:
    """One file per device and variant; the paper network's keeps the bare device name."""
    folder.mkdir(parents=True, exist_ok=True)
    model = result.get("model", "defusion")
    path = folder / f"{device_slug(result)}{'' if model == 'defusion' else '_' + model}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def print_table(result: dict, console: Console) -> None:
    t = Table(title=f"defusion-rt bench: {result.get('model', 'defusion')} on {device_slug(result)} "
                    f"({result['weights']} weights)")
    for col in ["engine", "precision", "size", "batch", "FPS", "median ms", "p95 ms", "x fp32 eager", "rel err",
                "build s"]:
        t.add_column(col, justify="right")
    for r in result["records"]:
        if "fps" not in r:
            continue
        t.add_row(r["engine"] + (" (NCHW)" if r["baseline"] else ""), r["precision"], f"{r['width']}x{r['height']}",
                  str(r["batch"]), f"{r['fps']:.2f}", f"{r['latency_ms_median']:.1f}", f"{r['latency_ms_p95']:.1f}",
                  f"{r.get('speedup_vs_fp32_eager', float('nan')):.2f}", f"{r['rel_err_vs_fp32']:.1e}",
                  f"{r.get('build_s', 0):.1f}")
    console.print(t)
    for e in ([result["e2e"]] if "e2e" in result else []) + result.get("e2e_classical", []):
        console.print(f"end to end ({e['model']} {e['engine']} {e['precision']}, {e['width']}x{e['height']}, decode+"
                      f"register+fuse+encode): {e['fps']:.2f} FPS over {e['frames']} frames")
