"""Stage 5 as a pipeline stage: overlay, window, recording and timing log, on the main thread.

The stage owns what it opens: the window and the timing log open in `__enter__`, the recording at the first frame
(a run that fuses nothing leaves no video file), and all of them close in `__exit__`, whatever ended the run.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from .display import Window, has_screen
from .overlay import StatsOverlay, side_by_side
from .serve import LiveView, parse_address
from .stream_out import StreamSink, check_stream_url, is_stream_url
from ..errors import UserError
from ..outputs import check_file
from .sink import TimingLog, VideoSink

STAGES = ("wait", "register", "fuse", "render", "total")


class LatencyWindow:
    """A run's latency for one stage in fixed memory: mean over every frame, percentiles over the last `size`
    (about two minutes at 30 FPS), so an hour-long run holds no more than a short one."""

    def __init__(self, size: int = 4096):
        self.recent: deque = deque(maxlen=size)
        self.count, self.total = 0, 0.0

    def add(self, value: float) -> None:
        self.recent.append(value)
        self.count += 1
        self.total += value

    def summary(self) -> dict:
        return dict(mean=self.total / self.count, p50=float(np.percentile(self.recent, 50)),
                    p95=float(np.percentile(self.recent, 95)), window=len(self.recent))


@dataclass
class RenderSettings:
    display: bool = False       # an OpenCV window (q or Esc stops); ignored without a screen
    side_by_side: bool = False  # show and record A | B | fused
    overlay: bool = True        # FPS, latency and drops drawn on the output
    record: str | list = ""     # output video path (.mp4: H.264 via PyAV, else MPEG-4 Part 2; .avi: MJPG), or a
                                # network output: udp://, tcp:// (MPEG-TS) or rtsp:// (stream_out.py); a list
                                # for several at once (record a file and send a stream)
    codec: Literal["auto", "h264", "mp4v"] = "auto"
    # x264's speed/size trade-off: superfast keeps up with the cameras on a small CPU; slower presets give smaller
    # files
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "superfast"
    csv: str = ""               # per-frame timestamps and latencies
    serve: str = ""             # [HOST:]PORT: a live view in the browser (serve.py); host 127.0.0.1 unless given
    serve_token: str = ""       # required from viewers (?token=...) when set; advised off this machine


class RenderStage:
    """In: FusedFrames and the live statistics to draw. Out: a window, a recording, a timing log, a live view."""

    def __init__(self, s: RenderSettings, warn: Callable[[str], None] = print, title: str = "defusion-rt"):
        self.s, self.warn, self.title = s, warn, title
        self.fps = 0.0                     # the recording's frame rate: stream A's, set once the sources are open
        self.outputs = [s.record] if isinstance(s.record, str) else list(s.record)
        self.outputs = [o for o in self.outputs if o]
        for out in self.outputs:  # fail before any camera opens, not at the first frame
            check_stream_url(out) if is_stream_url(out) else check_file(out, "recording")
        if s.csv:
            check_file(s.csv, "timing log (--csv)")
        if s.serve:
            parse_address(s.serve)
        self.overlay = StatsOverlay()
        self.latency = {k: LatencyWindow() for k in STAGES}
        self.window: Window | None = None
        self.sinks: dict[str, VideoSink | StreamSink] = {}  # opened at the first frame (its size)
        self.lost: list[str] = []  # recordings stopped by a failed write while other outputs went on
        self.log: TimingLog | None = None
        self.live: LiveView | None = None
        self.frames = 0

    def __enter__(self) -> "RenderStage":
        if self.s.display:
            if has_screen():
                self.window = Window(self.title)
            else:
                self.warn("no screen found: running headless (record with --record)")
        self.log = TimingLog(self.s.csv or None)
        if self.s.serve:
            self.live = LiveView(self.s.serve, self.s.serve_token)
            if not self.live.local and not self.s.serve_token:
                self.warn(f"the live view shows camera images to anyone who can reach {self.live.host}:"
                          f"{self.live.port}; set --serve-token to require a token")
            self.warn(f"live view: {self.live.url}")
        return self

    def __call__(self, item, stats: dict) -> bool:
        """Draw, show, record and log one FusedFrame; False when the user closed the window."""
        t0 = time.monotonic()
        frame = side_by_side(item.a, item.b, item.image, labels=("A", "B", "fused")) if self.s.side_by_side \
            else item.image
        if self.s.overlay:  # the fused frame is ours (StreamedFuser made it): draw on it in place
            frame = self.overlay.annotate(np.ascontiguousarray(frame), stats)
        if self.outputs and not self.sinks and not self.lost:
            self.sinks = {out: self._open(out, frame.shape[1::-1]) for out in self.outputs}
        for out, sink in list(self.sinks.items()):
            try:
                sink.write(frame)
            except UserError as err:  # a recording's disk is full: it stops, playable; the rest goes on
                sink.__exit__(None, None, None)
                del self.sinks[out]
                self.lost.append(str(err))
                if not (self.sinks or self.window or self.live):
                    raise  # it was the only output: the run stops with this one line
                self.warn(f"{err}; the other outputs go on")
        keep_open = self.window.show(frame) if self.window else True
        if self.live is not None:
            self.live.publish(frame, item.a, item.b, item.image, stats)
        now = time.monotonic()
        row = dict(frame=self.frames, index_a=item.index_a, index_b=item.index_b, ts_a=item.ts_a, ts_b=item.ts_b,
                   skew_ms=item.skew_ms, wait_ms=item.wait_ms, register_ms=item.register_ms,
                   fuse_ms=item.fuse_ms, render_ms=1000 * (now - t0), total_ms=1000 * (now - item.captured))
        for k in STAGES:
            self.latency[k].add(row[f"{k}_ms"])
        self.log.write(row)
        self.frames += 1
        return keep_open

    def _open(self, out: str, size: tuple[int, int]) -> VideoSink | StreamSink:
        if is_stream_url(out):
            return StreamSink(out, self.fps, size, self.s.preset).__enter__()
        return VideoSink(out, self.fps, size, self.s.codec, self.s.preset).__enter__()

    @property
    def codec(self) -> str:
        return ", ".join(dict.fromkeys(sink.used for sink in self.sinks.values()))

    def notes(self) -> list[str]:
        notes = list(self.lost)
        for out, sink in self.sinks.items():
            if isinstance(sink, StreamSink) and (sink.dropped or sink.reconnects):
                notes.append(f"network output {out}: {sink.dropped} frame(s) not sent while the receiver was away, "
                             f"{sink.reconnects} reconnect(s)")
        return notes

    def latency_summary(self) -> dict:
        return {k: w.summary() for k, w in self.latency.items() if w.count}

    def __exit__(self, *exc) -> None:
        for sink in self.sinks.values():
            sink.__exit__(None, None, None)
        if self.log is not None:
            self.log.close()
        if self.window is not None:
            self.window.close()
        if self.live is not None:
            self.live.close()
