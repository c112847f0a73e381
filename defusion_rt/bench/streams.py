"""`defusion-rt bench --streams N[,N...]`: N copies of one recorded pair through one engine (pipeline/multi.py),
each copy decoding its own files, registered by a rig-like calibration as the end-to-end run is; aggregate and
per-pair FPS, drops and latency. `--paced` plays every copy at the clip's frame rate as live cameras (the question
then is whether N pairs are fused live without drops and at the clip's rate: a paced file that falls behind is
late rather than dropping frames as a camera would, so `keeps_up` checks both); unpaced, how many frames per second the machine fuses over
all pairs. Frames get the overlay and are counted, not encoded: N encoders would measure x264, not fusion.

The single-pair pipeline runs the same clip first, in the same process, as the reference for one pair."""
from __future__ import annotations

import datetime
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..fusion import FusionSettings, make_engine
from ..register import Registration
from .matrix import BenchSettings, _rig_matrix, _sample_videos, _video_size
from .telemetry import GpuSampler, machine


def run_streams(counts: list[int], s: BenchSettings, fusion: FusionSettings, paced: bool, console: Console) -> dict:
    from ..pipeline import MultiPipeline, MultiSettings, Pipeline, PipelineSettings
    from ..pipeline.settings import PairSettings
    engine = make_engine(fusion)  # one engine for every run: built once, warmed per batch shape
    sampler = GpuSampler()
    sampler.start()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        a, b = s.e2e or _sample_videos(Path(tmp), s.e2e_frames, (640, 480))
        size, fps = _video_size(a), _video_fps(a)
        rig = str(Registration(_rig_matrix(size), size, size).save(Path(tmp) / "rig.yaml"))

        def pair(name: str) -> PairSettings:
            p = PairSettings(name=name)
            p.sources.a, p.sources.b, p.sources.paced = a, b, paced
            p.sources.mode = "live" if paced else "recorded"
            p.register.method, p.register.fov = rig, "pad"
            return p

        one = PipelineSettings(sources=pair("single").sources, register=pair("single").register, fusion=fusion)
        one.run.max_frames, one.run.progress = s.e2e_frames, False
        single = Pipeline(one, console, engine=engine).run()
        runs.append(dict(n=1, pipeline="single", **_pair_row("single", single),
                         keeps_up=single.fps >= 0.95 * fps and not single.dropped if paced else None))
        console.print(f"single pair: {single.fps:.1f} FPS")
        for n in counts:
            ms = MultiSettings(fusion=fusion, pairs=[pair(f"pair{i + 1}") for i in range(n)])
            ms.run.max_frames, ms.run.progress = s.e2e_frames, False
            summary = MultiPipeline(ms, console, engine=engine).run()
            rows = [_pair_row(name, sm) for name, sm in summary.pairs]
            runs.append(dict(n=n, pipeline="multi", fps_total=round(summary.fps, 2),
                             # paced: a file that falls behind its clock is late, not dropped as a camera's frames
                             # would be, so keeping up is judged by the rate too
                             keeps_up=all(r["fps"] >= 0.95 * fps and not r["dropped"] for r in rows) if paced
                             else None,
                             fps_per_pair_median=round(statistics.median(r["fps"] for r in rows), 2),
                             dropped_total=sum(r["dropped"] + r["dropped_after_fusion"] for r in rows),
                             latency_p95_ms_median=round(statistics.median(r["latency_p95_ms"] for r in rows), 2),
                             mean_batch=round(summary.mean_batch, 2), seconds=round(summary.seconds, 2),
                             pairs=rows))
            console.print(f"{n} pairs: {summary.fps:.1f} FPS over all pairs, "
                          f"{runs[-1]['fps_per_pair_median']:.1f} per pair, {runs[-1]['dropped_total']} dropped")
    return dict(created=datetime.datetime.now().isoformat(timespec="seconds"), command=" ".join(sys.argv),
                kind="streams", model=engine.describe(), engine=engine.describe(), machine=machine(),
                device=engine.device.type, sources=[a, b] if s.e2e else "built-in scene", source_fps=fps,
                width=size[0],
                height=size[1], frames_per_pair=s.e2e_frames, paced=paced, outputs="overlay drawn, not encoded",
                runs=runs, gpu_telemetry=sampler.stop())


def _video_fps(spec: str) -> float:
    from ..capture import open_source
    src = open_source(spec)
    fps = src.info.fps
    src.close()
    return fps


def _pair_row(name: str, sm) -> dict:
    total = sm.latency_ms.get("total", {})
    return dict(name=name, fused=sm.fused, fps=round(sm.fps, 2), dropped=sm.dropped,
                dropped_after_fusion=sm.dropped_by_render, latency_mean_ms=round(total.get("mean", 0.0), 2),
                latency_p95_ms=round(total.get("p95", 0.0), 2), stopped_by=sm.stopped_by)


def print_streams(result: dict, console: Console) -> None:
    t = Table(title=f"defusion-rt bench --streams: {result['engine']}, {result['width']}x{result['height']}"
                    f"{', paced' if result['paced'] else ''}")
    cols = ["pairs", "pipeline", "FPS all pairs", "FPS per pair", "dropped", "latency p95", "pairs per call"]
    for col in cols + (["keeps up"] if result["paced"] else []):
        t.add_column(col, justify="right")
    for r in result["runs"]:
        total = r.get("fps_total", r.get("fps"))
        t.add_row(str(r["n"]), r["pipeline"], f"{total:.1f}", f"{r.get('fps_per_pair_median', r.get('fps')):.1f}",
                  str(r.get("dropped_total", r.get("dropped", 0))),
                  f"{r.get('latency_p95_ms_median', r.get('latency_p95_ms')):.1f} ms", str(r.get("mean_batch", 1)),
                  *(["yes" if r["keeps_up"] else "no"] if result["paced"] else []))
    console.print(t)
