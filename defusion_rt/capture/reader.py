"""Capture threads: one per source, or one for two cameras on the same host (grab both, then retrieve both,
so the two exposures are close in time). Live sources reconnect with back-off; a watchdog on frame age catches a
camera that stops sending without closing the stream."""
from __future__ import annotations

import threading
import time
from typing import Callable

import cv2

from ..errors import UserError
from .queues import END, Closed, FrameQueue
from .sources import Frame, Source, VideoSource


class CaptureThread(threading.Thread):
    """Reads `sources` into `queues` (one each) until they end, a limit is hit, or the pipeline stops."""

    def __init__(self, sources: list[Source], queues: list[FrameQueue], stop: threading.Event, *,
                 max_frames: int | None = None, stall_s: float = 5.0, reconnect: bool = True,
                 backoff: tuple[float, float] = (0.5, 8.0), on_status: Callable[[str, str], None] | None = None):
        super().__init__(daemon=True, name="capture-" + "+".join(s.info.spec for s in sources))
        self.sources, self.queues, self.stop = sources, queues, stop
        self.max_frames, self.stall_s, self.reconnect, self.backoff = max_frames, stall_s, reconnect, backoff
        self.on_status = on_status or (lambda spec, status: None)
        self.error: BaseException | None = None
        self.read = [0] * len(sources)
        self.reconnects = 0
        self.ended = False  # a source reached its end (not a stop or a frame limit)

    def _read_all(self) -> list[Frame | None]:
        if len(self.sources) == 1:
            return [self.sources[0].read()]
        grabbed = [s.grab() for s in self.sources]
        return [s.retrieve() if ok else None for s, ok in zip(self.sources, grabbed)]

    def _recover(self, i: int) -> bool:
        """Reopen a live source with exponential back-off until it works or the pipeline stops."""
        src = self.sources[i]
        if not (self.reconnect and src.info.live and isinstance(src, VideoSource)):
            return False
        delay = self.backoff[0]
        while not self.stop.is_set():
            self.on_status(src.info.spec, f"reconnecting (retry in {delay:.1f}s)")
            self.stop.wait(delay)
            try:
                src.reopen()
            except (UserError, cv2.error, OSError):  # still away: try again later (a bug is not caught here)
                delay = min(delay * 2, self.backoff[1])
                continue
            self.reconnects += 1
            self.on_status(src.info.spec, "ok")
            return True
        return False

    def _can_resume(self, i: int) -> bool:
        """A camera or network stream may send again after a failed read; a file played at its frame rate (live
        for pairing) has simply ended."""
        info = self.sources[i].info
        return info.live and info.kind in ("camera", "network")

    def run(self) -> None:
        last_ok = [time.monotonic()] * len(self.sources)
        try:
            while not self.stop.is_set():
                if self.max_frames is not None and min(self.read) >= self.max_frames:
                    break
                frames = self._read_all()
                ended = False
                for i, frame in enumerate(frames):
                    if frame is not None:
                        last_ok[i] = time.monotonic()
                        self.read[i] += 1
                        self.queues[i].put(frame)
                    elif self._can_resume(i) and time.monotonic() - last_ok[i] < self.stall_s:
                        continue  # a failed read on a camera or stream: retry until the watchdog fires
                    elif not self._recover(i):
                        ended = True
                    else:
                        last_ok[i] = time.monotonic()
                if ended:
                    self.ended = True
                    break
        except Closed:
            pass
        except BaseException as err:  # surfaced by the pipeline on the main thread
            self.error = err
        finally:  # the sources are closed by the stage that opened them
            for q in self.queues:
                q.put(END)
