"""Overlays (annotator-style): `annotate(frame, stats) -> frame`, drawn in place on BGR uint8 frames."""
from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(frame: np.ndarray, lines: list[str], origin: tuple[int, int], scale: float) -> None:
    h = int(22 * scale / 0.5)
    width = max(cv2.getTextSize(s, FONT, scale, 1)[0][0] for s in lines) + 10
    x, y = origin
    sub = frame[y:y + h * len(lines) + 6, x:x + width]
    cv2.convertScaleAbs(sub, dst=sub, alpha=0.45)  # darkened box, readable on any scene (in place, on uint8)
    for i, s in enumerate(lines):
        cv2.putText(frame, s, (x + 5, y + h * (i + 1) - 4), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


class StatsOverlay:
    """Live FPS, per-stage latency (ms), drops and source status in the top-left corner."""

    def __init__(self, scale: float | None = None, stages: tuple[str, ...] = ("register", "fuse", "total")):
        self.scale, self.stages = scale, stages

    def annotate(self, frame: np.ndarray, stats: dict) -> np.ndarray:
        scale = self.scale or max(0.35, min(0.7, frame.shape[0] / 900))
        lines = [f"{stats.get('fps', 0):5.1f} FPS  {stats.get('engine', '')}"]
        lat = stats.get("latency_ms", {})
        lines.append("  ".join(f"{k} {lat[k]:.0f}ms" for k in self.stages if k in lat))
        drops = stats.get("dropped", {})
        lines.append(f"dropped A {drops.get('A', 0)} B {drops.get('B', 0)}  frame {stats.get('frame', 0)}")
        lines += [f"{spec}: {st}" for spec, st in stats.get("status", {}).items() if st != "ok"]
        lines.append(stats.get("warning", ""))
        _label(frame, [s for s in lines if s], (6, 6), scale)
        return frame


def side_by_side(*frames: np.ndarray, labels: tuple[str, ...] = ()) -> np.ndarray:
    """Frames scaled to a common height and placed left to right, with optional labels."""
    h = frames[0].shape[0]
    tiles = []
    for i, f in enumerate(frames):
        f = f if f.shape[0] == h else cv2.resize(f, (int(f.shape[1] * h / f.shape[0]), h))
        f = f.copy()
        if i < len(labels):
            cv2.putText(f, labels[i], (8, h - 10), FONT, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
        tiles.append(f)
    return np.concatenate(tiles, axis=1)
