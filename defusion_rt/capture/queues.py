"""A small bounded queue with a deliberate policy per port: `block` for recordings (nothing lost),
`drop_oldest` for live sources (always the freshest frame, every drop counted)."""
from __future__ import annotations

import threading
import time
from collections import deque

END = object()  # end of stream marker


class Closed(Exception):
    """Raised by put/get once the pipeline is stopping."""


class FrameQueue:
    def __init__(self, maxsize: int, policy: str = "block", stop: threading.Event | None = None):
        assert policy in ("block", "drop_oldest")
        self.maxsize, self.policy = max(1, maxsize), policy
        self.stop = stop or threading.Event()
        self.items: deque = deque()
        self.cond = threading.Condition()
        self.dropped = 0
        self.high_water = 0

    def put(self, item, poll: float = 0.05) -> None:
        with self.cond:
            if item is not END and self.policy == "block":
                while len(self.items) >= self.maxsize:
                    if self.stop.is_set():
                        raise Closed
                    self.cond.wait(poll)
            elif item is not END and len(self.items) >= self.maxsize:
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)  # END always fits: a finished source must be able to say so
            if item is not END:  # the high-water mark counts frames; END is a marker, not a queued frame
                self.high_water = max(self.high_water, len(self.items))
            self.cond.notify_all()

    def get(self, timeout: float | None = None, poll: float = 0.05):
        """Next item; raises TimeoutError after `timeout` seconds and Closed when stopping."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self.items:
                if self.stop.is_set():
                    raise Closed
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError
                self.cond.wait(poll)
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def get_nowait(self):
        with self.cond:
            if not self.items:
                return None
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def __len__(self) -> int:
        return len(self.items)
