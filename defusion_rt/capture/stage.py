"""Stages 1-2 as one pipeline stage: the two sources opened, read on capture threads into bounded queues, paired.

The stage owns its sources: they open in `__enter__` and close in `__exit__`, whatever ended the run (a source
whose thread is stuck in a driver call is reported and left to it rather than closed under its feet).
"""
from __future__ import annotations

import threading
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Literal

from .pairing import LivePairer, PairStats, RecordedPairer
from .queues import FrameQueue
from .reader import CaptureThread
from .sources import Frame, Source, SourceInfo, open_source


@dataclass
class SourcesSettings:
    a: str = "sample:ir"        # camera index, video file, URL, folder of frames, or sample:ir / sample:vis
    b: str = "sample:vis"
    mode: Literal["auto", "recorded", "live"] = "auto"  # auto: live if a camera or URL is involved
    paced: bool = False         # play recorded sources at their frame rate, as cameras would
    fps: float = 0.0            # frame rate of folders, samples and paced videos (0: a video's own, 25 for folders,
                                # 30 for samples)
    tolerance_ms: float = 0.0   # live pairing: largest capture-time difference of a pair; 0: half the slower
                                # source's frame period plus 10 ms of capture jitter (26.7 ms at 30 FPS), the
                                # least that pairs every frame of two unsynchronised cameras at one rate
    queue: int = 4              # frames buffered per source (live sources keep only the freshest)
    timeout_s: float = 5.0      # network open/read timeout, and the stall watchdog on frame age
    reconnect: bool = True      # live sources reopen with exponential back-off after a drop
    sample_frames: int = 90     # length of the built-in sample streams


class CaptureStage:
    """Out: `next_pair()` -> (Frame A, Frame B), or None when the sources have ended."""

    JOIN_S = 10.0

    def __init__(self, s: SourcesSettings, stop: threading.Event, max_frames: int | None = None,
                 warn: Callable[[str], None] = print):
        self.s, self.stop, self.max_frames, self.warn = s, stop, max_frames, warn
        self.sources: list[Source] = []
        self.threads: list[CaptureThread] = []
        self.status: dict[str, str] = {}
        self.live = False

    def __enter__(self) -> "CaptureStage":
        s = self.s
        with ExitStack() as opened:  # B failing to open closes A
            for spec in (s.a, s.b):
                src = open_source(spec, s.fps or None, s.paced, s.timeout_s, s.sample_frames)
                opened.callback(src.close)
                self.sources.append(src)
            opened.pop_all()
        self.live = s.mode == "live" or (s.mode == "auto" and any(x.info.live for x in self.sources))
        self.status = {x.info.spec: "ok" for x in self.sources}
        return self

    @property
    def info(self) -> list[SourceInfo]:
        return [x.info for x in self.sources]

    def start(self) -> None:
        """Capture threads start reading; live sources keep only the freshest frames, recorded ones block."""
        s = self.s
        policy, size = ("drop_oldest", 2) if self.live else ("block", s.queue)
        self.queues = [FrameQueue(size, policy, self.stop) for _ in self.sources]
        common = dict(max_frames=None if self.live else self.max_frames, stall_s=s.timeout_s,
                      reconnect=s.reconnect, on_status=self.status.__setitem__)
        if all(x.info.kind == "camera" for x in self.sources):  # grab both, then retrieve both: close in time
            self.threads = [CaptureThread(self.sources, self.queues, self.stop, **common)]
        else:
            self.threads = [CaptureThread([x], [q], self.stop, **common) for x, q in zip(self.sources, self.queues)]
        wait = s.timeout_s * 3
        qa, qb = self.queues
        self.pairer = LivePairer(qa, qb, self.tolerance_s(), wait, self.reconnecting) if self.live else \
            RecordedPairer(qa, qb, self.sources[1].info.fps, wait)
        for t in self.threads:
            t.start()

    def tolerance_s(self) -> float:
        """Two free-running cameras at the same rate sit up to half a period apart, plus jitter: a tighter bound
        drops a frame whenever the jitter crosses it (seen in the soak, benchmarks/reliability)."""
        if self.s.tolerance_ms > 0:
            return self.s.tolerance_ms / 1000
        return 0.5 / max(1e-6, min(x.info.fps for x in self.sources)) + 0.010

    def reconnecting(self) -> bool:
        return any(status != "ok" for status in self.status.values())

    def next_pair(self) -> tuple[Frame, Frame] | None:
        return self.pairer.next_pair()

    # --- what the run summary reports -------------------------------------------------------------------
    @property
    def pairs(self) -> PairStats:
        return self.pairer.stats if self.threads else PairStats()

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_stream.values())

    @property
    def dropped_by_stream(self) -> dict[str, int]:
        """Frames of each stream not fused: dropped by its live queue (freshest first) or by pairing."""
        if not self.threads:
            return {"A": 0, "B": 0}
        qa, qb = (q.dropped for q in self.queues)
        return {"A": qa + self.pairs.dropped_a, "B": qb + self.pairs.dropped_b}

    @property
    def queued(self) -> dict[str, int]:
        """Frames waiting per stream now (the live view shows it; the soak samples it)."""
        return {"A": len(self.queues[0]), "B": len(self.queues[1])} if self.threads else {"A": 0, "B": 0}

    @property
    def frames_read(self) -> tuple[int, int]:
        if not self.threads:
            return 0, 0
        counts = [n for t in self.threads for n in t.read]
        return counts[0], counts[1]

    @property
    def reconnects(self) -> int:
        return sum(t.reconnects for t in self.threads)

    @property
    def max_queue(self) -> int:
        return max((q.high_water for q in self.queues), default=0) if self.threads else 0

    @property
    def errors(self) -> list[BaseException]:
        return [t.error for t in self.threads if t.error is not None]

    def short_sources(self) -> list[str]:
        """Files that ended before the frame count their container declares (truncated or damaged)."""
        read = self.frames_read
        return [f"{x.info.spec} ended after {n} of {x.info.frames} frames" for x, n in zip(self.sources, read)
                if x.info.kind == "file" and x.info.frames and n < x.info.frames and self._ended(x)]

    def _ended(self, src: Source) -> bool:
        return any(src in t.sources and t.ended for t in self.threads)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        stuck = set()
        for t in self.threads:
            t.join(timeout=self.JOIN_S)
            if t.is_alive():  # e.g. a camera driver stuck in read(): say so rather than hang or hide it
                self.warn(f"the {t.name} thread did not stop within {self.JOIN_S:.0f} s; it is left running")
                stuck.update(map(id, t.sources))
        for src in self.sources:
            if id(src) not in stuck:
                src.close()
