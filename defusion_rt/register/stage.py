"""Stage 3 as a pipeline stage: B aligned onto A, frame by frame.

A calibration file is read and checked when the stage is made, before any source opens. `auto`, `ecc` and
`features` are estimated on the first pair and checked; an estimate that fails its check is never used silently
(live runs go on unregistered with a warning on the overlay, recorded runs stop unless allowed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Literal

import cv2
import numpy as np

from ..errors import UserError
from .estimate import estimate
from .registration import Registration, load_calibration

ESTIMATED = ("auto", "ecc", "features")


@dataclass
class RegisterSettings:
    method: str = "none"        # none | auto (cross-modal, checked) | ecc | features | path to a calibration YAML
    model: Literal["homography", "affine"] = "homography"  # for auto and features
    fov: Literal["crop", "pad"] = "crop"  # crop to the common field of view | pad (keep A's full frame)
    allow_untrusted: bool = False  # recorded runs: fuse unregistered when the estimate fails its check


class RegisterStage:
    """In: two BGR frames as read. Out: the two aligned frames, cut to the common view, of one fixed size."""

    def __init__(self, s: RegisterSettings, warn: Callable[[str], None] = print):
        self.s, self.warn = s, warn
        self.live = False                  # set by the pipeline once the sources are open
        self.registration: Registration | None = None
        if s.method not in ("none", *ESTIMATED):
            self.registration = load_calibration(s.method, s.fov)
        self.sizes: list[tuple[int, int] | None] = [None, None]
        self.resized = 0
        self.warning = ""                  # shown on the overlay while it holds

    def output_size(self, size_a: tuple[int, int]) -> tuple[int, int] | None:
        """The size of the aligned frames, where it is known before the first pair (not for estimates)."""
        if self.registration is not None:
            return self.registration.output_size
        return None if self.s.method in ESTIMATED else size_a

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._consistent(0, a), self._consistent(1, b)
        if self.registration is None:
            self.registration = self._first(a, b)
        return self.registration.align(a, b)

    def _first(self, a: np.ndarray, b: np.ndarray) -> Registration:
        size_a, size_b = a.shape[1::-1], b.shape[1::-1]
        if self.s.method == "none":
            return Registration.identity(size_a, size_b)
        reg = estimate(a, b, self.s.method, self.s.model)
        if not reg.trusted:
            if not (self.live or self.s.allow_untrusted):
                raise UserError(f"registration failed its check: {reg.note}; nothing was written. Pass "
                                "--register none to fuse unregistered, or calibrate the rig "
                                "(`defusion-rt calibrate --method auto --frames 10`)")
            self.warn(f"registration not trusted ({reg.note}); fusing unregistered")
            self.warning = "UNREGISTERED: check failed"
            return Registration.identity(size_a, size_b)
        return dataclasses.replace(reg, fov=self.s.fov)

    def _consistent(self, i: int, img: np.ndarray) -> np.ndarray:
        """Frames of changing size are scaled back to the stream's first size (counted and reported once)."""
        size = img.shape[1::-1]
        if self.sizes[i] is None:
            self.sizes[i] = size
        elif size != self.sizes[i]:
            if not self.resized:
                self.warn(f"stream {'AB'[i]} changed size to {size[0]}x{size[1]}; scaling back to "
                          f"{self.sizes[i][0]}x{self.sizes[i][1]}")
            self.resized += 1
            img = cv2.resize(img, self.sizes[i], interpolation=cv2.INTER_AREA)
        return img

    def describe(self) -> str:
        reg = self.registration
        if reg is None:
            return ""
        return reg.model + (f", residual {reg.residual_px:.3f} px" if reg.residual_px is not None else "") + (
            f", confidence {reg.confidence:.2f}" if reg.confidence is not None else "") + (
            f" ({self.warning})" if self.warning else "")
