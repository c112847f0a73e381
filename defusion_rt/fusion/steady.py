"""Steady video: a fused frame may change from the last one only as far as the sources changed around each pixel.

A network's per-pixel weights wander a little from frame to frame even where the scene holds still (sensor noise
reaches them through a wide receptive field), and where something moves they change with the content: either way
the fused video moves where neither source did, which metrics/temporal.py measures as flicker. Here each fused
frame is limited to the previous output plus a change inside the range the two sources' changes span nearby:

    out_t = out_t-1 + clip(fused_t - out_t-1, lo, hi),
    lo / hi = min / max of (a_t - a_t-1, b_t - b_t-1) over a (2r+1)^2 neighbourhood, per channel,

so any fixed per-pixel mix of the sources passes unchanged, and wherever a source moves the output follows the
network. A camera's noise moves every pixel a level or two a frame, so the output follows the network in a still
scene too, within the noise. Nothing else moves it: a change of the network's mind over an area whose sources hold
still (a scene change elsewhere, reaching it through the network's receptive field) is held back, since by the
metric's definition every level of it is flicker.

`leak` > 0 adds a catch-up: where the output has fallen more than `stale` levels behind the network's running mean
over about `memory` frames, it moves `leak` levels a frame towards it (a pipeline's fusion.steady_catch_up; for
noise-free sources, such as rendered video, where nothing else would). Off by default: on the M3SVD clips and the
TNO validation sequences it was all the flicker left (catch-up 1 level a frame past 16: 0.0058 on M3SVD; none:
0.0000, every clip) and bought little per-frame quality (Qabf 0.743 with, 0.742 without; VIF 1.022, 1.017), side
by side on the same fused frames of the shipped IR-visible weights: benchmarks/steady_variants.sh.
"""
from __future__ import annotations

import cv2
import numpy as np


class Steady:
    """Call with the two aligned sources and the fused frame (HxWx3 uint8 BGR, as the pipeline carries them), in
    order. grey: the fused frame is grey (IR-visible without colour), so the sources' luma bounds its one channel,
    the grey level the network saw and the metric reads; else each colour channel is bounded by its own. 1.2 ms a
    640x480 grey frame, 2.4 ms a colour one, on a 2-core AVX-512-BF16 EPYC (benchmarks/steady_cost.py)."""

    def __init__(self, grey: bool = False, radius: int = 1, leak: int = 0, stale: int = 16, memory: int = 8):
        self.grey = grey
        self.kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        self.stale, self.leak, self.memory = stale, leak, memory  # levels on 0-255; frames
        self.prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.mean: np.ndarray | None = None  # the network's running mean, float32

    def __call__(self, a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> np.ndarray:
        if self.grey:
            a, b = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) if x.ndim == 3 else x for x in (a, b))
            return cv2.merge([self._step(a, b, np.ascontiguousarray(fused[..., 0]))] * 3)
        return self._step(a, b, fused)

    def _step(self, a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> np.ndarray:
        if self.prev is None or self.prev[0].shape != a.shape:  # the first frame, or a new size
            self.prev, self.mean = (a, b, fused), fused.astype(np.float32)
            return fused
        pa, pb, out = self.prev
        # Differences in int16 through OpenCV: exact, and twice as fast as numpy in float32.
        da, db = cv2.subtract(a, pa, dtype=cv2.CV_16S), cv2.subtract(b, pb, dtype=cv2.CV_16S)
        hi, lo = cv2.dilate(cv2.max(da, db), self.kernel), cv2.erode(cv2.min(da, db), self.kernel)
        if self.leak:  # `leak` more room towards the mean where the output is more than `stale` from it, else 0
            cv2.accumulateWeighted(fused, self.mean, 1 / self.memory)
            mean = cv2.convertScaleAbs(self.mean)  # uint8; the subtractions below saturate at 0: one direction each
            up = cv2.threshold(cv2.subtract(mean, out), self.stale, self.leak, cv2.THRESH_BINARY)[1]
            down = cv2.threshold(cv2.subtract(out, mean), self.stale, self.leak, cv2.THRESH_BINARY)[1]
            hi, lo = cv2.add(hi, up, dtype=cv2.CV_16S), cv2.subtract(lo, down, dtype=cv2.CV_16S)
        behind = cv2.subtract(fused, out, dtype=cv2.CV_16S)
        out = cv2.add(out, cv2.min(cv2.max(behind, lo), hi), dtype=cv2.CV_8U)  # saturates to 0-255
        self.prev = (a, b, out)
        return out
