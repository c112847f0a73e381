"""A built-in synthetic IR/visible scene, so the main command and the tests run without any data set.

The visible frame is a textured daylight scene whose right half sits in deep shadow; the IR frame is a smooth,
low-texture thermal background with warm figures (one walks across the scene), bright in IR and hidden in the
shadow of the visible image: the case fusion is for.
"""
from __future__ import annotations

import cv2
import numpy as np


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = cv2.resize(rng.random((h // 8, w // 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.0)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = 0.5 + 0.5 * np.sin(xx / 6.0) * (yy > h * 0.6)  # a fence in the foreground
    return np.clip(0.45 * base + 0.25 * fine + 0.3 * stripes, 0, 1)


def sample_pair(index: int = 0, size: tuple[int, int] = (320, 240), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frame `index` of the scene as (ir, visible), HxWx3 float32 in [0,1]; the IR is grey as thermal cameras are."""
    w, h = size
    rng = np.random.default_rng(seed)
    tex = _texture(h, w, rng)
    vis = np.stack([tex * 0.9, tex * 0.95, tex * 0.8 + 0.1], axis=2)
    vis[:, w // 2:] *= 0.12  # deep shadow: the visible camera sees almost nothing there
    ir = np.full((h, w), 0.25, np.float32) + 0.08 * cv2.GaussianBlur(tex, (0, 0), 6)
    x = int((0.15 + 0.7 * ((index * 0.01) % 1.0)) * w)  # the walker moves 1% of the width per frame
    for cx, cy in ((x, int(h * 0.55)), (int(w * 0.75), int(h * 0.5))):
        cv2.ellipse(ir, (cx, cy), (max(3, w // 40), max(8, h // 8)), 0, 0, 360, 0.9, -1)
        cv2.circle(ir, (cx, cy - max(8, h // 8) - max(3, h // 40)), max(3, h // 40), 0.95, -1)
    ir = cv2.GaussianBlur(ir, (0, 0), 1.2)
    return np.repeat(ir[..., None], 3, axis=2).astype(np.float32), np.clip(vis, 0, 1).astype(np.float32)
