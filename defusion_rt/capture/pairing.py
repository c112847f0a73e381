"""Pairing the two streams.

Recorded sources (files, folders): stream A is the clock. Each A frame is paired with the B frame nearest in
source time; with equal frame rates that is frame-by-frame, and no A frame is ever dropped. When B runs at another
rate its frames are repeated (slower) or skipped (faster), and both are counted. The run ends when A ends, or
when B has ended and A has passed B's last frame by more than half a B frame period.

Live sources (cameras, network streams, paced files): the freshest frames are paired when their capture times
differ by at most `tolerance_s`; otherwise the older frame is dropped (counted) and a newer one awaited.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .queues import END, FrameQueue
from .sources import Frame


@dataclass
class PairStats:
    pairs: int = 0
    dropped_a: int = 0      # frames discarded by pairing (live: stale in the queue, or out of tolerance)
    dropped_b: int = 0
    out_of_tolerance: int = 0  # of those, older frames given up for a tighter pair (a choice, not a backlog)
    repeated_b: int = 0     # recorded, B slower than A: a B frame used again
    skipped_b: int = 0      # recorded, B faster than A: a B frame never used


class RecordedPairer:
    def __init__(self, qa: FrameQueue, qb: FrameQueue, fps_b: float, timeout: float):
        self.qa, self.qb, self.timeout = qa, qb, timeout
        self.half_period = 0.5 / max(fps_b, 1e-6)
        self.prev: Frame | None = None
        self.next: Frame | None = None
        self.b_done = False
        self.last_used = -1
        self.stats = PairStats()

    def _pull_b(self) -> None:
        item = self.qb.get(self.timeout)
        if item is END:
            self.b_done, self.next = True, None
        else:
            self.next = item

    def next_pair(self) -> tuple[Frame, Frame] | None:
        fa = self.qa.get(self.timeout)
        if fa is END:
            return None
        if self.prev is None and self.next is None and not self.b_done:
            self._pull_b()
        while self.next is not None and self.next.timestamp <= fa.timestamp:
            if self.prev is not None and self.prev.index > self.last_used:
                self.stats.skipped_b += 1
            self.prev = self.next
            self._pull_b()
        candidates = [f for f in (self.prev, self.next) if f is not None]
        if not candidates:
            return None
        fb = min(candidates, key=lambda f: abs(f.timestamp - fa.timestamp))
        if self.b_done and fa.timestamp - fb.timestamp > self.half_period:
            return None  # B has ended and A has moved past it
        self.stats.repeated_b += fb.index <= self.last_used
        self.last_used = max(self.last_used, fb.index)
        self.stats.pairs += 1
        return fa, fb


class LivePairer:
    """`reconnecting()` says whether a capture thread is reopening its source: the wait goes on then (a camera
    that is back in 20 s must not end the run), and only a source that stalls without recovering times out."""

    def __init__(self, qa: FrameQueue, qb: FrameQueue, tolerance_s: float, timeout: float,
                 reconnecting: Callable[[], bool] = lambda: False):
        self.qa, self.qb, self.tol, self.timeout, self.reconnecting = qa, qb, tolerance_s, timeout, reconnecting
        self.stats = PairStats()

    def _get(self, q: FrameQueue):
        while True:
            try:
                return q.get(self.timeout)
            except TimeoutError:
                if not self.reconnecting():
                    raise

    def _freshest(self, q: FrameQueue, first: Frame) -> Frame:
        """Skip to the newest queued frame; older ones are stale."""
        frame = first
        while (item := q.get_nowait()) is not None:
            if item is END:
                q.put(END)  # leave the end marker for the next call
                break
            frame = item
            if q is self.qa:
                self.stats.dropped_a += 1
            else:
                self.stats.dropped_b += 1
        return frame

    def next_pair(self) -> tuple[Frame, Frame] | None:
        fa = self._get(self.qa)
        fb = END if fa is END else self._get(self.qb)  # one stream ended: no need to wait on the other
        while True:
            if fa is END or fb is END:
                return None
            fa, fb = self._freshest(self.qa, fa), self._freshest(self.qb, fb)
            if abs(fa.timestamp - fb.timestamp) <= self.tol:
                self.stats.pairs += 1
                return fa, fb
            self.stats.out_of_tolerance += 1
            if fa.timestamp < fb.timestamp:  # drop the older frame, wait for a newer one of that stream
                self.stats.dropped_a += 1
                fa = self._get(self.qa)
            else:
                self.stats.dropped_b += 1
                fb = self._get(self.qb)
