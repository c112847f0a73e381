"""Bundled example pairs, one per task, made from the built-in synthetic scene (samples.py): nothing to download,
nothing of anyone else's data shipped."""
from __future__ import annotations

import cv2
import numpy as np

from ..samples import sample_pair

EXAMPLES = {
    "ir-vis": "a figure in a shadow the visible camera cannot see through (IR | visible)",
    "multi-focus": "the scene with its left half in focus in A and its right half in B",
    "multi-exposure": "the scene under-exposed in A and over-exposed in B",
}


def example_pair(name: str, size: tuple[int, int] = (480, 360)) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) as HxWx3 float RGB in [0,1]."""
    ir, vis = sample_pair(30, size)
    if name == "ir-vis":
        return ir, vis
    scene = np.ascontiguousarray(vis.copy())
    scene[:, size[0] // 2:] = np.clip(scene[:, size[0] // 2:] / 0.12 * 0.9, 0, 1)  # light the shadow: a plain scene
    if name == "multi-focus":
        blurred = cv2.GaussianBlur(scene, (0, 0), 3.0)
        left = np.zeros(scene.shape[:2], bool)
        left[:, : size[0] // 2] = True
        a = np.where(left[..., None], scene, blurred)
        b = np.where(left[..., None], blurred, scene)
        return a.astype(np.float32), b.astype(np.float32)
    if name == "multi-exposure":
        return (np.clip(scene * 0.35, 0, 1) ** 1.2).astype(np.float32), np.clip(scene * 2.2, 0, 1).astype(np.float32)
    raise KeyError(name)
