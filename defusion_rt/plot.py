"""Small line and bar charts drawn with OpenCV (no plotting dependency), for loss curves and benchmarks."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img, s, org, scale=0.45, colour=(0, 0, 0)):
    cv2.putText(img, s, org, FONT, scale, colour[::-1], 1, cv2.LINE_AA)


def line_plot(series: dict[str, tuple[list, list]], path: str | Path, title: str, xlabel: str, ylabel: str,
              log_y: bool = False, size: tuple[int, int] = (900, 520)) -> Path:
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 170, 40, 50
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if np.isfinite(y) and (y > 0 or not log_y)]
    if not pts:
        pts = [(0, 1), (1, 2)]
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts) or 1
    y0, y1 = min(tf(p[1]) for p in pts), max(tf(p[1]) for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x, y):
        return (int(left + (x - x0) / (x1 - x0) * (w - left - right)),
                int(h - bottom - (tf(y) - y0) / (y1 - y0) * (h - top - bottom)))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for i in range(5):
        fy = y0 + (y1 - y0) * i / 4
        yy = int(h - bottom - i / 4 * (h - top - bottom))
        _text(img, f"{10 ** fy if log_y else fy:.3g}", (5, yy + 4), 0.4)
        fx = x0 + (x1 - x0) * i / 4
        _text(img, f"{fx:.4g}", (left + int(i / 4 * (w - left - right)) - 15, h - bottom + 18), 0.4)
    for k, (name, (xs, ys)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)][::-1]
        line = [px(x, y) for x, y in zip(xs, ys) if np.isfinite(y) and (y > 0 or not log_y)]
        if len(line) > 1:
            cv2.polylines(img, [np.array(line, np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.line(img, (w - right + 10, top + 10 + 20 * k), (w - right + 30, top + 10 + 20 * k), colour, 2)
        _text(img, name, (w - right + 35, top + 14 + 20 * k), 0.42)
    _text(img, title, (left, 25), 0.6)
    _text(img, xlabel, (w // 2 - 40, h - 12))
    _text(img, ylabel + (" (log)" if log_y else ""), (5, top - 8), 0.4)
    cv2.imwrite(str(path), img)
    return Path(path)


def bar_plot(bars: dict[str, float], path: str | Path, title: str, unit: str, width: int = 900) -> Path:
    """Horizontal bars, one per label, with the value written at the bar's end."""
    row = 22
    h = 50 + row * max(1, len(bars))
    img = np.full((h, width, 3), 255, np.uint8)
    left = 330
    top_v = max(bars.values(), default=1) or 1
    for i, (label, v) in enumerate(bars.items()):
        y = 40 + i * row
        length = int(v / top_v * (width - left - 110))
        cv2.rectangle(img, (left, y), (left + max(length, 1), y + row - 6), COLOURS[i % 10][::-1], -1)
        _text(img, label[:48], (5, y + 12), 0.4)
        _text(img, f"{v:.3g} {unit}", (left + length + 5, y + 12), 0.4)
    _text(img, title, (5, 22), 0.6)
    cv2.imwrite(str(path), img)
    return Path(path)
