"""Temporal stability of a fused video: flicker, the fused frame-to-frame change that neither source's change
explains.

Definition adopted (the one issue #22 proposes, made pixel-wise and flow-free): on grey frames (0-255) at times
t-1 and t, with dA = A_t - A_t-1, dB and dF likewise, and lo / hi the smallest and largest of dA and dB within
a (2r+1) x (2r+1) neighbourhood (r = 2 px: a moving edge that a spatial operator spreads over a pixel or two is
not flicker),
    flicker_t = mean over pixels of  max(0, dF - hi) + max(0, lo - dF),
the distance of dF from the range the sources' changes span. Any fixed per-pixel mix of the sources (averaging,
an unchanging weight map) scores 0, and so does the per-pixel maximum: flicker comes from weights, offsets or
brightness that wander between frames while the sources hold still. A flow-warped error (Lai et al., "Learning
Blind Video Temporal Consistency", ECCV 2018) is the usual alternative; it needs optical flow, which dark visible
frames and textureless IR frames make unreliable, and it charges the sources' own changes to the fusion.
"""
from __future__ import annotations

import cv2
import numpy as np

from .grey import to_grey255


class Flicker:
    """Feed the frames of one fused video in order; `result()` gives the mean flicker and the mean absolute
    frame-to-frame change of the fused video and of each source (all on 0-255)."""

    def __init__(self, radius: int = 2):
        self.kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        self.prev: tuple | None = None
        self.sums = dict(flicker=0.0, change=0.0, change_a=0.0, change_b=0.0)
        self.steps = 0

    def add(self, a: np.ndarray, b: np.ndarray, f: np.ndarray) -> None:
        cur = tuple(to_grey255(x).astype(np.float32) for x in (a, b, f))
        if self.prev is not None:
            da, db, df = (c - p for c, p in zip(cur, self.prev))
            hi = cv2.dilate(np.maximum(da, db), self.kernel)
            lo = cv2.erode(np.minimum(da, db), self.kernel)
            outside = np.maximum(df - hi, 0) + np.maximum(lo - df, 0)
            for key, value in (("flicker", outside), ("change", df), ("change_a", da), ("change_b", db)):
                self.sums[key] += float(np.abs(value).mean())
            self.steps += 1
        self.prev = cur

    def result(self) -> dict:
        return {k: v / max(self.steps, 1) for k, v in self.sums.items()} | {"steps": self.steps}
