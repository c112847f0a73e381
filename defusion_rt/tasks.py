"""Per-task input conventions (spec section 4) between images on disk and the network's two RGB inputs.

- multi-exposure, multi-focus: RGB fed directly (grey replicated to three channels).
- ir-vis: both sources greyed and replicated, as the authors did; the output is grey. With colour=True the grey
  fusion becomes the luminance and the visible image's chroma is put back (the field's Y-fusion convention).
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import UserError

TASKS = ("ir-vis", "multi-exposure", "multi-focus")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise UserError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")
    return task


def grey3(img: np.ndarray) -> np.ndarray:
    """Luma (BT.601) replicated to three channels; the same weights as OpenCV's RGB2GRAY."""
    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return np.repeat(y[..., None], 3, axis=2)


def network_inputs(a: np.ndarray, b: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """HxWx3 float32 pair as the network sees it for `task` (a = IR for ir-vis)."""
    if task == "ir-vis":
        return grey3(a), grey3(b)
    return a, b


def network_output(fused: np.ndarray, task: str, visible: np.ndarray | None = None, colour: bool = False) -> np.ndarray:
    """Fused RGB from the network's 3-channel output; for ir-vis grey, or Y + visible chroma when colour."""
    fused = np.clip(fused, 0.0, 1.0).astype(np.float32)
    if task != "ir-vis":
        return fused
    y = fused.mean(axis=2)
    if not colour or visible is None:
        return np.repeat(y[..., None], 3, axis=2)
    ycrcb = cv2.cvtColor(visible.astype(np.float32), cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = y
    return np.clip(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB), 0.0, 1.0)


def match_sizes(a: np.ndarray, b: np.ndarray, resize: bool, names: tuple[str, str] = ("A", "B")) -> np.ndarray:
    """Return b at a's size; a mismatch is an error unless resize is allowed."""
    if a.shape[:2] == b.shape[:2]:
        return b
    if not resize:
        raise UserError(f"size mismatch: {names[0]} is {a.shape[1]}x{a.shape[0]}, {names[1]} is "
                        f"{b.shape[1]}x{b.shape[0]}; register the pair first or pass --resize")
    return cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
