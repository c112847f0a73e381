"""Several camera pairs in one process, fused by one engine (DeepStream's stream muxer is the model).

Threads: per pair, its capture threads and a feed thread (pairing and registration); one engine thread, the
muxer, which each tick takes the frames every pair has ready, fuses them and routes each result back to its pair;
the main thread renders every pair (windows must live there). On CUDA the ready pairs of one frame size go in one
batched call, padded to the number of pairs of that size (compiled engines keep one shape, and a batch of 16
costs a GPU little more than one pair); on a CPU a batch costs what its pairs cost one by one, so each pair is its
own call and no padding is computed.

A pair whose source stalls or ends, or whose registration fails its check, stops alone: its recording is closed
then and there and it gets its own line in the summary; the others go on. A bug anywhere stops every pair and is
raised on the main thread once every recording is closed.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..capture import END, CaptureStage, Closed, FrameQueue
from ..engines import Engine
from ..errors import UserError
from ..fusion import FusionStage, StreamedFuser
from ..fusion.stage import fused_frame
from ..fusion.steady import Steady
from ..register import RegisterStage
from ..render import RenderStage
from ..tasks import fuses_grey
from .runner import FpsMeter, Summary, live_stats, stopped_by_signals, summarise
from .settings import MultiSettings, PairSettings

JOIN_S = 10.0


class PairRun:
    """One pair: capture and registration on its own feed thread into `ready`; fused frames back on `out`."""

    def __init__(self, s: PairSettings, warn: Callable[[str], None], steady: Steady | None = None):
        self.s, self.name, self.warn = s, s.name, warn
        self.stop = threading.Event()
        self.stack = ExitStack()
        self.render = RenderStage(s.render, warn, title=f"defusion-rt {s.name}")  # outputs checked first
        self.register = RegisterStage(s.register, warn)
        self.summary = Summary()
        self.meter = FpsMeter()
        self.steady = steady  # this pair's own: it follows one stream in order
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.done = False

    def open(self, max_frames: int | None) -> tuple[int, int] | None:
        """Open the sources; the fused frames' size when it is known before the first pair."""
        self.capture = self.stack.enter_context(CaptureStage(self.s.sources, self.stop, max_frames, self.warn))
        live = self.register.live = self.capture.live
        self.render.fps = self.capture.info[0].fps
        policy = "drop_oldest" if live else "block"  # live: the freshest frames; recorded: nothing lost
        self.ready = FrameQueue(2 if live else self.s.sources.queue, policy, self.stop)
        self.out = FrameQueue(4, policy, self.stop)
        return self.register.output_size(self.capture.info[0].size)

    def start(self, wake: threading.Event) -> None:
        self.stack.enter_context(self.render)
        self.capture.start()
        self.thread = threading.Thread(target=self._feed, args=(wake,), name=f"feed-{self.name}", daemon=True)
        self.thread.start()

    def _feed(self, wake: threading.Event) -> None:
        stall_s = self.s.sources.timeout_s * 3
        try:
            while (pair := FusionStage.next_pair(self.capture.next_pair, stall_s)) is not None:
                t0 = time.monotonic()
                a, b = self.register(pair[0].image, pair[1].image)
                self.ready.put((pair, a, b, time.monotonic() - t0))
                wake.set()
        except Closed:
            pass
        except BaseException as err:  # for the main thread: a UserError ends this pair, anything else the run
            self.error = err
        finally:
            self.ready.put(END)
            wake.set()

    def finish(self, seconds: float, why: str = "") -> None:
        """Stop this pair and close its recording now; the other pairs go on."""
        if self.done:
            return
        self.done = True
        self.stop.set()
        if self.thread is not None:
            self.thread.join(JOIN_S)
        self.stack.close()
        sm = self.summary
        sm.seconds = seconds
        if isinstance(self.error, UserError) and not sm.stopped_by:
            sm.stopped_by, sm.message = "error", str(self.error)
        sm.stopped_by = sm.stopped_by or why or "end of sources"
        if hasattr(self, "capture"):
            summarise(sm, self.capture, self.register, self.render, getattr(self, "out", None))


class Muxer:
    """The engine thread's loop: each tick, the frames every pair has ready, fused and routed back."""

    def __init__(self, fusion: FusionStage, pairs: list[PairRun], sizes: Counter, wake: threading.Event,
                 rendered: threading.Event):
        self.fusion, self.pairs, self.sizes, self.wake, self.rendered = fusion, pairs, sizes, wake, rendered
        self.batched = self.fused = self.calls = 0
        self.cuda = fusion.engine.device.type == "cuda"
        self.streamed: dict[tuple, StreamedFuser] = {}
        self.error: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        open_ = list(range(len(self.pairs)))
        try:
            while open_ and not stop.is_set():
                self.wake.clear()  # before looking: a frame put after this sets it again
                ready, ended = [], []
                for i in open_:
                    item = self.pairs[i].ready.get_nowait()
                    if item is END:
                        ended.append(i)
                    elif item is not None:
                        ready.append((i, item))
                if ready:
                    self._fuse(ready)
                if ended:  # their frames still in flight come back first
                    for fuser in self.streamed.values():
                        self._route(fuser.flush())
                    for i in ended:
                        open_.remove(i)
                        self.pairs[i].out.put(END)
                    self.rendered.set()
                if not ready and not ended:
                    self.wake.wait(0.05)
            for fuser in self.streamed.values():
                self._route(fuser.flush())
        except Closed:
            pass
        except BaseException as err:  # surfaced on the main thread, traceback and all
            self.error = err
        finally:
            for p in self.pairs:
                p.out.put(END)
            self.rendered.set()

    def _fuse(self, ready: list[tuple[int, tuple]]) -> None:
        groups: dict[tuple, list] = {}
        for i, item in ready:
            groups.setdefault(item[1].shape[:2], []).append((i, item))
        for (h, w), members in groups.items():
            if (h, w) not in self.streamed:
                pad = self.sizes.get((w, h), len(members)) if self.cuda else 1
                self.streamed[(h, w)] = self.fusion.streamed(pad_to=pad)
            for call in [members] if self.cuda else [[m] for m in members]:
                t = time.monotonic()
                done = self.streamed[(h, w)].submit([m[1][1] for m in call], [m[1][2] for m in call], (call, t))
                self.calls += 1
                self.batched += len(call)
                self._route(done)

    def _route(self, finished) -> None:
        for frames, (call, t_submit) in finished:
            now = time.monotonic()
            for (i, item), image in zip(call, frames):
                try:
                    self.pairs[i].out.put(fused_frame(item, image, t_submit, now, self.pairs[i].steady))
                    self.fused += 1
                except Closed:  # that pair was stopped (its window closed, its frame limit reached)
                    pass
            self.rendered.set()


@dataclass
class MultiSummary:
    pairs: list = field(default_factory=list)   # (name, Summary)
    engine: str = ""
    seconds: float = 0.0
    fused: int = 0
    fps: float = 0.0                            # all pairs' fused frames per second of the run
    mean_batch: float = 0.0                     # pairs per engine call
    stopped_by: str = ""


class MultiPipeline:
    """`MultiPipeline(settings).run()` -> MultiSummary: every pair of a `pairs:` file through one engine."""

    def __init__(self, s: MultiSettings, console: Console | None = None, engine: Engine | None = None):
        self.s, self.console, self.engine = s, console or Console(stderr=True), engine
        self.stop = threading.Event()
        self.wake, self.rendered = threading.Event(), threading.Event()
        self.stopped_by = ""

    def _warn(self, text: str) -> None:
        self.console.print(f"[yellow]{text}")

    def run(self) -> MultiSummary:
        s, summary = self.s, MultiSummary()
        with ExitStack() as stack:
            # every output checked before any camera opens
            grey = fuses_grey(s.fusion.task, s.fusion.colour)
            pairs = [PairRun(p, self._warn, Steady(grey, leak=s.fusion.steady_catch_up) if s.fusion.steady else None)
                     for p in s.pairs]
            fusion = FusionStage(s.fusion, self.engine)
            summary.engine = fusion.engine.describe()
            start = time.monotonic()
            for p in pairs:
                stack.callback(lambda p=p: p.finish(time.monotonic() - start, self.stopped_by))
            sizes = Counter(p.open(s.run.max_frames or None) for p in pairs)
            cuda = fusion.engine.device.type == "cuda"
            for size, n in sizes.items():
                if size is not None:
                    fusion.warm_up(size, n if cuda else 1, say=self.console.print)
            stack.callback(fusion.join, JOIN_S, self._warn)
            stack.callback(self.stop.set)  # runs first on the way out
            stack.enter_context(stopped_by_signals(self._on_signal))
            mux = Muxer(fusion, pairs, sizes, self.wake, self.rendered)
            start = time.monotonic()
            for p in pairs:
                p.start(self.wake)
            fusion.run_loop(mux.run, self.stop)
            self._render_loop(pairs, summary.engine, start)
        summary.seconds = time.monotonic() - start
        return self._conclude(summary, pairs, mux)

    def _on_signal(self) -> None:
        self.stopped_by = self.stopped_by or "signal"
        self.stop.set()

    def _render_loop(self, pairs: list[PairRun], engine: str, start: float) -> None:
        limit = self.s.run.max_frames or None
        recorded = [p for p in pairs if not p.capture.live]
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            console=self.console, disable=not (self.s.run.progress and recorded))
        with progress:
            bars = {p.name: progress.add_task(p.name, total=_expected(p, limit)) for p in recorded}
            active = list(pairs)
            while active and not self.stop.is_set():
                self.rendered.clear()
                busy = False
                for p in list(active):
                    item = p.out.get_nowait()
                    if item is None:
                        continue
                    busy = True
                    keep = item is not END and self._render(p, item, engine, limit)
                    if p.name in bars:
                        progress.update(bars[p.name], completed=p.render.frames)
                    if not keep:
                        p.finish(time.monotonic() - start)
                        active.remove(p)
                if not busy:
                    self.rendered.wait(0.05)

    def _render(self, p: PairRun, item, engine: str, limit: int | None) -> bool:
        """Render one frame of pair `p`; False when that pair is to stop."""
        stats = live_stats(item, p.meter.tick(), engine, p.capture, p.register, p.render, p.out) | {"pair": p.name}
        try:
            shown = p.render(item, stats)
        except UserError as err:  # e.g. its recording's disk is full: this pair stops, what it wrote is kept
            p.summary.stopped_by, p.summary.message = "error", str(err)
            return False
        if not shown:
            p.summary.stopped_by = "window closed"
        elif limit and p.render.frames >= limit:
            p.summary.stopped_by = "max frames"
        return shown and not p.summary.stopped_by

    def _conclude(self, summary: MultiSummary, pairs: list[PairRun], mux: Muxer) -> MultiSummary:
        summary.pairs = [(p.name, p.summary) for p in pairs]
        summary.fused = sum(p.summary.fused for p in pairs)
        summary.fps = summary.fused / max(summary.seconds, 1e-9)
        summary.mean_batch = mux.batched / max(mux.calls, 1)
        summary.stopped_by = self.stopped_by or "every pair ended"
        errors = [e for e in [mux.error, *(p.error for p in pairs),
                              *(e for p in pairs for e in p.capture.errors)] if e is not None]
        bugs = [e for e in errors if not isinstance(e, UserError)]
        if isinstance(mux.error, UserError):  # the engine itself: every pair stopped by it
            for _, sm in summary.pairs:
                sm.stopped_by, sm.message = "error", str(mux.error)
        if bugs:
            print_multi_summary(summary, self.console)
            for other in bugs[1:]:
                self.console.print("another thread failed too:\n" + "".join(traceback.format_exception(other)),
                                   soft_wrap=True, markup=False, highlight=False)
            raise bugs[0]
        return summary


def _expected(p: PairRun, limit: int | None) -> int | None:
    n = p.capture.info[0].frames
    return (min(n, limit) if limit else n) if n else limit


def print_multi_summary(summary: MultiSummary, console: Console) -> None:
    t = Table(title="defusion-rt run: several pairs")
    for col in ("pair", "fused", "dropped", "after fusion", "FPS", "latency p95", "recording", "stopped by"):
        t.add_column(col)
    for name, sm in summary.pairs:
        p95 = sm.latency_ms.get("total", {}).get("p95")
        t.add_row(name, str(sm.fused), str(sm.dropped), str(sm.dropped_by_render), f"{sm.fps:.1f}",
                  f"{p95:.1f} ms" if p95 is not None else "-", sm.record or "-",
                  sm.stopped_by + (f": {sm.message}" if sm.message else ""))
    console.print(t)
    console.print(f"fused with {summary.engine}: {summary.fused} frames in {summary.seconds:.1f} s, "
                  f"{summary.fps:.1f} FPS over all pairs, {summary.mean_batch:.1f} pairs per engine call")
    for name, sm in summary.pairs:
        for note in sm.notes:
            console.print(f"{name}: note: {note}")
