"""Stage 3 as a pipeline stage: B aligned onto A, frame by frame.

A calibration file is read and checked when the stage is made, before any source opens. `auto`, `ecc` and
`features` are estimated on the first pair and checked; an estimate that fails its check is never used silently
(live runs go on unregistered with a warning on the overlay, recorded runs stop unless allowed).

Live runs may re-estimate every `reestimate_s` seconds (a rig that shifts, a first estimate made on a poor scene),
off the frame path in a background thread. A new estimate replaces the one in use only when it is trusted, more
confident, and stable: the next re-estimate agrees with it to within 2 px. The output size never changes
mid-run (the common view of the first estimate is kept), so the engine and the recording go on as they were.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal

import cv2
import numpy as np

from ..errors import UserError
from .estimate import corner_rms, estimate
from .registration import Registration, load_calibration

ESTIMATED = ("auto", "ecc", "features")


@dataclass
class RegisterSettings:
    method: str = "none"        # none | auto (cross-modal, checked) | ecc | features | path to a calibration YAML
    model: Literal["homography", "affine"] = "homography"  # for auto and features
    fov: Literal["crop", "pad"] = "crop"  # crop to the common field of view | pad (keep A's full frame)
    allow_untrusted: bool = False  # recorded runs: fuse unregistered when the estimate fails its check
    reestimate_s: float = 0.0   # live runs with auto/ecc/features: re-estimate this often (0: never); switch only
                                # to an estimate that is trusted, more confident and stable


STABLE_PX = 2.0  # two re-estimates within this RMS corner distance agree
MARGIN = 0.02    # a re-estimate must beat the confidence in use by this much: no flapping between equals


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
        self.reestimates = self.switches = 0
        self._next_at = 0.0
        self._worker: threading.Thread | None = None
        self._candidate: Registration | None = None   # the last re-estimate, waiting for a second that agrees
        self._result: Registration | None = None      # a finished re-estimate, picked up on the next frame
        self._error: BaseException | None = None

    def output_size(self, size_a: tuple[int, int]) -> tuple[int, int] | None:
        """The size of the aligned frames, where it is known before the first pair (not for estimates)."""
        if self.registration is not None:
            return self.registration.output_size
        return None if self.s.method in ESTIMATED else size_a

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._consistent(0, a), self._consistent(1, b)
        if self.registration is None:
            self.registration = self._first(a, b)
            self._next_at = time.monotonic() + self.s.reestimate_s
        elif self.live and self.s.reestimate_s > 0 and self.s.method in ESTIMATED:
            self._maybe_reestimate(a, b)
        return self.registration.align(a, b)

    def _maybe_reestimate(self, a: np.ndarray, b: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        if self._result is not None:
            self._consider(self._result)
            self._result = None
        if self._worker is None or not self._worker.is_alive():
            if time.monotonic() >= self._next_at:
                self._next_at = time.monotonic() + self.s.reestimate_s
                self._worker = threading.Thread(target=self._reestimate, args=(a.copy(), b.copy()),
                                                name="registration", daemon=True)
                self._worker.start()

    def _reestimate(self, a: np.ndarray, b: np.ndarray) -> None:
        try:
            self._result = estimate(a, b, self.s.method, self.s.model)
        except UserError:
            pass  # no estimate from this pair: the one in use stays
        except BaseException as err:  # a bug: re-raised on the frame path, which surfaces it on the main thread
            self._error = err

    def _consider(self, new: Registration) -> None:
        """Switch to `new` when it is trusted, more confident than the estimate in use, and stable."""
        self.reestimates += 1
        current, previous, self._candidate = self.registration, self._candidate, None
        better = new.trusted and (current.model == "none" or (new.confidence or 0) > (current.confidence or 0) + MARGIN)
        if not better:
            return
        if previous is None or corner_rms(previous.matrix, new.matrix, new.size_b) > STABLE_PX:
            self._candidate = new  # wait for a second estimate that agrees
            return
        switched = dataclasses.replace(new, fov=current.fov)
        switched.crop_box = current.crop_box  # the output size stays what the engine and the recording use
        self.registration, self.warning = switched, ""
        self.switches += 1
        self.warn(f"registration re-estimated: confidence {new.confidence:.2f} (was "
                  f"{current.confidence or 0:.2f}); switched")

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
            f", re-estimated {self.reestimates}x, switched {self.switches}x" if self.reestimates else "") + (
            f" ({self.warning})" if self.warning else "")

