"""An OpenCV window on the main thread; q or Esc asks the pipeline to stop. Headless where there is no screen."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np


def has_screen() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Window:
    def __init__(self, title: str = "defusion-rt"):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, frame: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q/Esc or closed the window."""
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        return not (key in (ord("q"), 27) or closed)

    def close(self) -> None:
        cv2.destroyWindow(self.title)
