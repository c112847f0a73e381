"""The two-stream pipeline: capture -> pairing -> registration -> fusion -> render/record.

Threads: one capture thread per source (or one for two local cameras), one fusion worker (pairing, registration,
fusion), and the main thread rendering, displaying and recording. Stages talk through small bounded queues; every
wait has a timeout, worker exceptions stop the run and surface on the main thread, and the recording is closed
whatever ends the run, so it is playable with every frame fused so far.
"""
from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..capture import END, CaptureThread, Closed, FrameQueue, LivePairer, RecordedPairer, open_source
from ..engines import CLASSICAL, auto_choice, create_engine
from ..model import variant_for_weights
from ..engines.streams import StreamedFuser
from ..errors import UserError
from ..fuse import Fuser
from ..register import Registration, estimate, load_calibration
from ..render import StatsOverlay, TimingLog, VideoSink, Window, has_screen, side_by_side
from ..render.sink import check_writable
from ..tasks import check_task
from .settings import PipelineSettings

STAGES = ("wait", "register", "fuse", "render", "total")


@dataclass
class Summary:
    frames_a: int = 0
    frames_b: int = 0
    fused: int = 0
    dropped: int = 0
    repeated_b: int = 0
    skipped_b: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms: dict = field(default_factory=dict)   # stage -> {"mean", "p95"}
    stopped_by: str = ""
    message: str = ""
    record: str = ""
    codec: str = ""
    engine: str = ""             # variant, engine, precision and device that fused
    registration: str = ""
    max_queue: int = 0
    reconnects: int = 0


@dataclass
class Fused:
    image: np.ndarray
    a: np.ndarray
    b: np.ndarray
    meta: dict


class FpsMeter:
    """Frames per second over a sliding window of frame times: (n - 1) intervals for n stamps."""

    def __init__(self, window: int = 30):
        self.stamps: deque = deque(maxlen=window)

    def tick(self) -> float:
        self.stamps.append(time.monotonic())
        if len(self.stamps) < 2:
            return 0.0
        return (len(self.stamps) - 1) / max(self.stamps[-1] - self.stamps[0], 1e-9)


class Pipeline:
    def __init__(self, s: PipelineSettings, console: Console | None = None):
        self.s, self.console = s, console or Console(stderr=True)
        check_task(s.fusion.task)
        if s.sources.mode not in ("auto", "recorded", "live"):
            raise UserError(f"sources.mode must be auto, recorded or live, not '{s.sources.mode}'")
        if s.fusion.method != "defusion" and s.fusion.method not in CLASSICAL:
            raise UserError(f"unknown method '{s.fusion.method}'; choose defusion, {', '.join(CLASSICAL)}")
        if s.render.record:  # fail before any camera opens, not after the first fused frame
            check_writable(Path(s.render.record))
        self.fuser = self._fuser()
        src = s.sources
        self.sources = [open_source(spec, src.fps or None, src.paced, src.timeout_s, src.sample_frames)
                        for spec in (src.a, src.b)]
        self.live = src.mode == "live" or (src.mode == "auto" and any(x.info.live for x in self.sources))
        self.stop = threading.Event()
        self.status = {x.info.spec: "ok" for x in self.sources}
        r = s.register
        # A calibration file is read now, so a bad one fails before any frame; its fit is checked on the first pair.
        self.registration: Registration | None = None if r.method in ("none", "auto", "ecc", "features") else \
            load_calibration(r.method, r.fov)
        self.sizes: list[tuple[int, int] | None] = [None, None]
        self.resized = 0
        self.registration_warning = ""
        self.error: BaseException | None = None

    def _fuser(self) -> Fuser:
        f = self.s.fusion
        if f.method == "defusion":
            model = f.model if f.model != "auto" else variant_for_weights(f.weights) if f.weights else None
            auto = auto_choice(f.device, f.task, model)  # a weight file knows its architecture
            pick = {k: auto[k] if getattr(f, k) == "auto" else getattr(f, k) for k in ("model", "engine", "precision")}
            engine = create_engine(pick["engine"], f.device, pick["precision"], weights=f.weights or None,
                                   model_name=pick["model"], task=f.task)
        else:
            engine = create_engine(f.method, f.device)
        return Fuser(engine, f.task, colour=f.colour)

    # --- fusion worker -------------------------------------------------------------------------------------
    def _register(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.s.register
        if self.registration is None:
            size_a, size_b = a.shape[1::-1], b.shape[1::-1]
            if r.method == "none":
                self.registration = Registration.identity(size_a, size_b)
            elif r.method in ("auto", "ecc", "features"):
                reg = estimate(a, b, r.method, r.model)
                if not reg.trusted:  # never used silently: live runs go on unregistered, recorded ones stop
                    if not (self.live or r.allow_untrusted):
                        raise UserError(f"registration failed its check: {reg.note}; nothing was written. Pass "
                                        "--register none to fuse unregistered, or calibrate the rig "
                                        "(`defusion-rt calibrate --method auto --frames 10`)")
                    self.console.print(f"[yellow]registration not trusted ({reg.note}); fusing unregistered")
                    self.registration_warning = "UNREGISTERED: check failed"
                    reg = Registration.identity(size_a, size_b)
                self.registration = reg
                self.registration.fov = r.fov if reg.model != "none" else "pad"
                self.registration.__post_init__()
        return self.registration.align(a, b)

    def _consistent(self, i: int, img: np.ndarray) -> np.ndarray:
        """Frames of changing size are scaled back to the stream's first size (counted and reported once)."""
        size = img.shape[1::-1]
        if self.sizes[i] is None:
            self.sizes[i] = size
        elif size != self.sizes[i]:
            if not self.resized:
                self.console.print(f"[yellow]stream {'AB'[i]} changed size to {size[0]}x{size[1]}; scaling back to "
                                   f"{self.sizes[i][0]}x{self.sizes[i][1]}")
            self.resized += 1
            img = cv2.resize(img, self.sizes[i], interpolation=cv2.INTER_AREA)
        return img

    def _fusion_worker(self, pairer, out: FrameQueue, batch: int) -> None:
        # On CUDA up to 3 batches are in flight (copy in, compute, copy out overlap); on the CPU one at a time.
        streamed = StreamedFuser(self.fuser, depth=3 if self.fuser.engine.device.type == "cuda" else 1)

        def emit(finished) -> None:
            for frames, (items, t_submit) in finished:
                fuse_ms = 1000 * (time.monotonic() - t_submit)
                for (fa, fb, a, b, reg_s), img in zip(items, frames):
                    captured = max(fa.captured, fb.captured)
                    out.put(Fused(img, a, b, dict(index_a=fa.index, index_b=fb.index, ts_a=fa.timestamp,
                                                  ts_b=fb.timestamp, captured=captured,
                                                  skew_ms=1000 * abs(fa.timestamp - fb.timestamp),
                                                  register_ms=1000 * reg_s, fuse_ms=fuse_ms,
                                                  wait_ms=1000 * max(0.0, t_submit - reg_s - captured))))
        try:
            done = False
            while not done and not self.stop.is_set():
                items = []
                while len(items) < batch:
                    pair = pairer.next_pair()
                    if pair is None:
                        done = True
                        break
                    fa, fb = pair
                    t0 = time.monotonic()
                    a, b = self._register(self._consistent(0, fa.image), self._consistent(1, fb.image))
                    items.append((fa, fb, a, b, time.monotonic() - t0))
                    if self.live:
                        break
                if items:
                    emit(streamed.submit([x[2] for x in items], [x[3] for x in items], (items, time.monotonic())))
            emit(streamed.flush())
        except (Closed, TimeoutError) as err:
            if isinstance(err, TimeoutError):
                self.error = UserError(f"a source stalled: no frame for {self.s.sources.timeout_s * 3:.0f} s; "
                                       "check the camera or stream (live sources reconnect automatically)")
        except BaseException as err:
            self.error = err
        finally:
            out.put(END)

    def _build_engine(self, batch: int) -> None:
        """Compiled engines build per input shape: build for the first frame's now, before capture starts, so no
        frame waits on it (with a registration estimated on the fly the shape is known only after it)."""
        if self.s.register.method in ("auto", "ecc", "features") or not hasattr(self.fuser.engine, "prepare"):
            return
        w, h = self.registration.crop_box[2:] if self.registration else self.sources[0].info.size
        self.console.print(f"building the {self.fuser.engine.describe()} engine for {w}x{h} (once per size)")
        zeros = torch.zeros(batch, 3, h, w, device=self.fuser.engine.device)
        with torch.inference_mode():
            for _ in range(3):  # the first calls after a build also set up oneDNN primitives and the allocator
                self.fuser.fuse_tensors(zeros, zeros)

    # --- main loop ---------------------------------------------------------------------------------------
    def run(self) -> Summary:
        s, src = self.s, self.s.sources
        policy = "drop_oldest" if self.live else "block"
        qsize = 2 if self.live else src.queue
        qa, qb = FrameQueue(qsize, policy, self.stop), FrameQueue(qsize, policy, self.stop)
        out = FrameQueue(max(4, 2 * s.fusion.batch), "block", self.stop)
        limit = s.run.max_frames or None

        def on_status(spec, st):
            self.status[spec] = st

        common = dict(max_frames=None if self.live else limit, stall_s=src.timeout_s, reconnect=src.reconnect,
                      on_status=on_status)
        cameras = [x for x in self.sources if x.info.kind == "camera"]
        if len(cameras) == 2:  # grab both, then retrieve both: frames close in time
            captures = [CaptureThread(self.sources, [qa, qb], self.stop, **common)]
        else:
            captures = [CaptureThread([x], [q], self.stop, **common) for x, q in zip(self.sources, (qa, qb))]
        wait = src.timeout_s * 3
        pairer = LivePairer(qa, qb, src.tolerance_ms / 1000, wait) if self.live else \
            RecordedPairer(qa, qb, self.sources[1].info.fps, wait)
        worker = threading.Thread(target=self._fusion_worker, name="fusion", daemon=True,
                                  args=(pairer, out, 1 if self.live else max(1, s.fusion.batch)))

        self._queues, self._pairer = (qa, qb), pairer
        self._build_engine(1 if self.live else max(1, s.fusion.batch))
        summary = Summary(engine=self.fuser.engine.describe())
        old = {sig: signal.signal(sig, lambda *_: self._request_stop(summary, "signal"))
               for sig in (signal.SIGINT, signal.SIGTERM)} if threading.current_thread() is threading.main_thread() else {}
        total = self._expected_frames(limit)
        start = time.monotonic()
        for t in captures + [worker]:
            t.start()
        try:
            self._render_loop(out, summary, limit, total)
        finally:
            self.stop.set()
            for t in captures + [worker]:
                t.join(timeout=10)
                if t.is_alive():  # e.g. a camera driver stuck in read(): say so rather than hang or hide it
                    self.console.print(f"[yellow]the {t.name} thread did not stop within 10 s; it is left running")
            for sig, handler in old.items():
                signal.signal(sig, handler)
        summary.seconds = time.monotonic() - start
        summary.fps = summary.fused / max(summary.seconds, 1e-9)
        summary.frames_a, summary.frames_b = (captures[0].read[0], captures[0].read[1]) if len(captures) == 1 else \
            (captures[0].read[0], captures[1].read[0])
        st = pairer.stats
        summary.dropped = self._drops()
        summary.repeated_b, summary.skipped_b = st.repeated_b, st.skipped_b
        summary.max_queue = max(qa.high_water, qb.high_water)
        summary.reconnects = sum(c.reconnects for c in captures)
        reg = self.registration
        summary.registration = "" if reg is None else f"{reg.model}" + (
            f", residual {reg.residual_px:.3f} px" if reg.residual_px is not None else "") + (
            f", confidence {reg.confidence:.2f}" if reg.confidence is not None else "") + (
            f" ({self.registration_warning})" if self.registration_warning else "")
        errors = [e for e in [self.error] + [c.error for c in captures] if e is not None]
        if errors:
            err = errors[0]
            if not isinstance(err, UserError):
                # A bug: every stage is stopped and the recording closed; it surfaces here with its own traceback.
                print_summary(summary, self.console)
                raise err
            summary.stopped_by, summary.message = "error", str(err)
        elif not summary.stopped_by:
            summary.stopped_by = "end of sources"
        return summary

    def _expected_frames(self, limit: int | None) -> int | None:
        n = self.sources[0].info.frames
        if self.live or n is None:
            return limit
        return min(n, limit) if limit else n

    def _request_stop(self, summary: Summary, why: str) -> None:
        summary.stopped_by = summary.stopped_by or why
        self.stop.set()

    def _render_loop(self, out: FrameQueue, summary: Summary, limit: int | None, total: int | None) -> None:
        s = self.s
        overlay, meter, lat = StatsOverlay(), FpsMeter(), {k: [] for k in STAGES}
        window = Window() if s.render.display and has_screen() else None
        if s.render.display and window is None:
            self.console.print("[yellow]no screen found: running headless (record with --record)")
        log = TimingLog(s.render.csv or None)
        sink = None
        progress = Progress(TextColumn("[bold]fusing"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[fps]:.1f} frames/s"), TimeRemainingColumn(),
                            console=self.console, disable=not s.run.progress or self.live)
        try:
            with progress:
                bar = progress.add_task("fuse", total=total, fps=0.0)
                while True:
                    try:
                        item = out.get(timeout=0.2)
                    except TimeoutError:
                        continue
                    except Closed:
                        break
                    if item is END:
                        break
                    t0 = time.monotonic()
                    frame = side_by_side(item.a, item.b, item.image, labels=("A", "B", "fused")) \
                        if s.render.side_by_side else item.image
                    frame = np.ascontiguousarray(frame)
                    fps = meter.tick()
                    m = item.meta
                    stats = dict(fps=fps, engine=self.fuser.engine.describe(), frame=summary.fused + 1,
                                 dropped=self._drops(), status=self.status, warning=self.registration_warning,
                                 latency_ms={"register": m["register_ms"], "fuse": m["fuse_ms"],
                                             "total": 1000 * (time.monotonic() - m["captured"])})
                    if s.render.overlay:
                        frame = overlay.annotate(frame.copy() if frame is item.image else frame, stats)
                    if s.render.record and sink is None:
                        fps_out = self.sources[0].info.fps
                        sink = VideoSink(s.render.record, fps_out, frame.shape[1::-1], s.render.codec).__enter__()
                        summary.record, summary.codec = str(s.render.record), sink.used
                    if sink is not None:
                        sink.write(frame)
                    keep_open = window.show(frame) if window else True
                    now = time.monotonic()
                    m.update(render_ms=1000 * (now - t0), total_ms=1000 * (now - m["captured"]))
                    for k in STAGES:
                        lat[k].append(m[f"{k}_ms"])
                    log.write(dict(frame=summary.fused, **m))
                    summary.fused += 1
                    progress.update(bar, advance=1, fps=fps)
                    if not keep_open:
                        self._request_stop(summary, "window closed")
                    if limit and summary.fused >= limit:
                        self._request_stop(summary, "max frames")
                    if self.stop.is_set():
                        break
        finally:
            if sink is not None:
                sink.__exit__(None, None, None)
            log.close()
            if window:
                window.close()
            summary.latency_ms = {k: dict(mean=float(np.mean(v)), p95=float(np.percentile(v, 95)))
                                  for k, v in lat.items() if v}

    def _drops(self) -> int:
        qa, qb = self._queues
        return qa.dropped + qb.dropped + self._pairer.stats.dropped_a + self._pairer.stats.dropped_b


def print_summary(summary: Summary, console: Console) -> None:
    t = Table(title="defusion-rt run", show_header=False)
    t.add_row("frames in (A / B)", f"{summary.frames_a} / {summary.frames_b}")
    t.add_row("fused", str(summary.fused))
    t.add_row("dropped", str(summary.dropped) + (f" (B repeated {summary.repeated_b}, skipped {summary.skipped_b})"
                                                 if summary.repeated_b or summary.skipped_b else ""))
    if summary.reconnects:
        t.add_row("reconnects", str(summary.reconnects))
    t.add_row("fused with", summary.engine)
    t.add_row("throughput", f"{summary.fps:.2f} FPS over {summary.seconds:.1f} s")
    for k, v in summary.latency_ms.items():
        t.add_row(f"latency {k}", f"mean {v['mean']:.1f} ms, p95 {v['p95']:.1f} ms")
    if summary.registration:
        t.add_row("registration", summary.registration)
    if summary.record:
        t.add_row("recording", f"{summary.record} ({summary.codec}, {summary.fused} frames)")
    t.add_row("stopped by", summary.stopped_by + (f": {summary.message}" if summary.message else ""))
    console.print(t)
