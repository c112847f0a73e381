"""The two-stream pipeline: capture -> pairing -> registration -> fusion -> render/record.

Each stage lives in the package whose job it is and declares what it takes and gives; `Pipeline.compose()` is the
one place they are made and wired. Threads: one capture thread per source (or one for two local cameras), one
fusion worker (pairing, registration, fusion), and the main thread rendering, displaying and recording. Stages
talk through small bounded queues and every wait has a timeout.

Errors: a UserError (a stalled source, a registration that fails its check) ends the run with one line; any other
exception is a bug, re-raised here on the main thread with its own traceback once every stage has stopped and the
recording is closed, so the recording is playable with every frame fused so far either way.
"""
from __future__ import annotations

import signal
import threading
import time
import traceback
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..capture import END, CaptureStage, Closed, FrameQueue
from ..engines import Engine
from ..errors import UserError
from ..fusion import FusionStage
from ..register import RegisterStage
from ..render import RenderStage
from .settings import PipelineSettings


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
    dropped_by_render: int = 0   # live: fused frames the render stage was too slow to take
    reconnects: int = 0
    notes: list = field(default_factory=list)  # e.g. a file that ended before its declared length


@dataclass
class Stages:
    capture: CaptureStage
    register: RegisterStage
    fusion: FusionStage
    render: RenderStage


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
    """`Pipeline(settings).run()` -> Summary. `engine` replaces the settings' engine (reused across runs by the
    batch mode; tests); `on_frame` is called after each frame is rendered (the batch mode's progress)."""

    JOIN_S = 10.0

    def __init__(self, s: PipelineSettings, console: Console | None = None, engine: Engine | None = None,
                 on_frame: Callable[[], None] | None = None):
        self.s, self.console, self.engine = s, console or Console(stderr=True), engine
        self.on_frame = on_frame or (lambda: None)
        self.stop = threading.Event()
        self.stages: Stages | None = None
        self.fused_queue: FrameQueue | None = None

    def _warn(self, text: str) -> None:
        self.console.print(f"[yellow]{text}")

    def _batch(self, live: bool) -> int:
        return 1 if live else max(1, self.s.fusion.batch)  # live sources fuse the freshest pair at once

    def compose(self, stack: ExitStack) -> Stages:
        """Make and wire the stages, in the order that fails fastest: what needs no camera first (the output
        path, a calibration file, the engine and its weights), then the sources, then the engine built and warmed
        for the frames' size before the first frame is read. Whatever is opened is entered into `stack`, which
        stops and closes it in reverse order."""
        s = self.s
        render = RenderStage(s.render, self._warn)
        register = RegisterStage(s.register, self._warn)
        fusion = FusionStage(s.fusion, self.engine)
        capture = stack.enter_context(CaptureStage(s.sources, self.stop, s.run.max_frames or None, self._warn))
        register.live, render.fps = capture.live, capture.info[0].fps
        size = register.output_size(capture.info[0].size)
        if size is not None:
            fusion.warm_up(size, self._batch(capture.live), say=self.console.print)
        stack.enter_context(render)
        stack.callback(fusion.join, self.JOIN_S, self._warn)
        stack.callback(self.stop.set)  # runs first on the way out: every thread sees it
        return Stages(capture, register, fusion, render)

    def run(self) -> Summary:
        s = self.s
        summary = Summary()
        with ExitStack() as stack:
            st = self.stages = self.compose(stack)
            summary.engine = st.fusion.engine.describe()
            stack.enter_context(stopped_by_signals(lambda: self._request_stop(summary, "signal")))
            # Live: a render slower than fusion (a stalled window, an encoder catching up) drops its oldest
            # fused frames, counted, instead of holding up fusion; recordings lose nothing.
            out = FrameQueue(max(4, 2 * s.fusion.batch), "drop_oldest" if st.capture.live else "block", self.stop)
            self.fused_queue = out
            start = time.monotonic()
            st.capture.start()
            st.fusion.start(st.capture.next_pair, st.register, out, self._batch(st.capture.live), self.stop,
                            s.sources.timeout_s * 3)
            self._render_loop(st, out, summary)
        summary.seconds = time.monotonic() - start
        self._summarise(st, summary)
        errors = [e for e in [st.fusion.error, *st.capture.errors] if e is not None]
        user = [str(e) for e in errors if isinstance(e, UserError)]
        bugs = [e for e in errors if not isinstance(e, UserError)]
        if summary.stopped_by == "error":  # the render stage's own (a recording that could not be written)
            user.insert(0, summary.message)
        if bugs:  # a bug: its traceback, now that every stage has stopped; nothing else is dropped
            summary.stopped_by, summary.message = "error", "; ".join(user)
            print_summary(summary, self.console)
            for other in bugs[1:]:
                self.console.print("another thread failed too:\n" + "".join(traceback.format_exception(other)),
                                   soft_wrap=True, markup=False, highlight=False)
            raise bugs[0]
        if user:
            summary.stopped_by, summary.message = "error", "; also: ".join(dict.fromkeys(user))
        elif not summary.stopped_by:
            summary.stopped_by = "end of sources"
        return summary

    def _request_stop(self, summary: Summary, why: str) -> None:
        summary.stopped_by = summary.stopped_by or why
        self.stop.set()

    def _render_loop(self, st: Stages, out: FrameQueue, summary: Summary) -> None:
        limit = self.s.run.max_frames or None
        meter = FpsMeter()
        progress = Progress(TextColumn("[bold]fusing"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[fps]:.1f} frames/s"), TimeRemainingColumn(),
                            console=self.console, disable=not self.s.run.progress or st.capture.live)
        with progress:
            bar = progress.add_task("fuse", total=self._expected_frames(st, limit), fps=0.0)
            while not self.stop.is_set():
                try:
                    item = out.get(timeout=0.2)
                except TimeoutError:
                    continue
                except Closed:
                    break
                if item is END:
                    break
                fps = meter.tick()
                try:
                    shown = st.render(item, live_stats(item, fps, summary.engine, st.capture, st.register,
                                                       st.render, out))
                except UserError as err:  # e.g. the recording's disk is full: stop, keep what was written
                    summary.stopped_by, summary.message = "error", str(err)
                    self.stop.set()
                    break
                if not shown:
                    self._request_stop(summary, "window closed")
                progress.update(bar, advance=1, fps=fps)
                self.on_frame()
                if limit and st.render.frames >= limit:
                    self._request_stop(summary, "max frames")

    def _expected_frames(self, st: Stages, limit: int | None) -> int | None:
        n = st.capture.info[0].frames
        if st.capture.live or n is None:
            return limit
        return min(n, limit) if limit else n

    def _summarise(self, st: Stages, summary: Summary) -> None:
        summarise(summary, st.capture, st.register, st.render, self.fused_queue)


def live_stats(item, fps: float, engine: str, cap: CaptureStage, register: RegisterStage, render: RenderStage,
               out: FrameQueue) -> dict:
    """What the overlay, the live view and the soak see of one pair, as of this frame."""
    return dict(fps=fps, engine=engine, frame=render.frames + 1,
                dropped=cap.dropped_by_stream, queued=cap.queued | {"fused": len(out)},
                dropped_for_tighter_pairs=cap.pairs.out_of_tolerance, dropped_after_fusion=out.dropped,
                status=cap.status, warning=register.warning, registration=register.describe(),
                latency_ms=dict(register=item.register_ms, fuse=item.fuse_ms,
                                total=1000 * (time.monotonic() - item.captured)))


@contextmanager
def stopped_by_signals(request_stop: Callable[[], None]):
    """Ctrl-C and SIGTERM stop the run cleanly (the recording is closed, the summary printed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, lambda *_: request_stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def summarise(summary: Summary, cap: CaptureStage, register: RegisterStage, render: RenderStage,
              fused_queue: FrameQueue | None) -> None:
    """One pair's counts, latencies and outputs into `summary` (its seconds already set)."""
    pairs = cap.pairs
    summary.fused = render.frames
    summary.fps = summary.fused / max(summary.seconds, 1e-9)
    summary.frames_a, summary.frames_b = cap.frames_read
    summary.dropped, summary.max_queue, summary.reconnects = cap.dropped, cap.max_queue, cap.reconnects
    summary.dropped_by_render = fused_queue.dropped if fused_queue is not None else 0
    summary.repeated_b, summary.skipped_b = pairs.repeated_b, pairs.skipped_b
    summary.latency_ms = render.latency_summary()
    summary.registration = register.describe()
    if render.frames and render.outputs:
        summary.record, summary.codec = ", ".join(render.outputs), render.codec
    summary.notes = [f"{n}: the file is truncated or damaged" for n in cap.short_sources()] + render.notes()


def print_summary(summary: Summary, console: Console) -> None:
    t = Table(title="defusion-rt run", show_header=False)
    t.add_row("frames in (A / B)", f"{summary.frames_a} / {summary.frames_b}")
    t.add_row("fused", str(summary.fused))
    t.add_row("dropped", str(summary.dropped) + (f" (B repeated {summary.repeated_b}, skipped {summary.skipped_b})"
                                                 if summary.repeated_b or summary.skipped_b else ""))
    if summary.dropped_by_render:
        t.add_row("dropped after fusion", f"{summary.dropped_by_render} (the display or encoder fell behind)")
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
    for note in summary.notes:
        t.add_row("note", note)
    t.add_row("stopped by", summary.stopped_by + (f": {summary.message}" if summary.message else ""))
    console.print(t)
