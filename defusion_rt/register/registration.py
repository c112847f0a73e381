"""Stage 3: align stream B to stream A with a fixed affine or homography, then crop or pad to the common view.

Calibration files (YAML) hold `model` (affine | homography), `matrix` (3x3, maps B pixels to A pixels), the
`size_a` and `size_b` [width, height] they were made at, and optionally `fov` (crop | pad) and `residual_px`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..config import yaml_problem
from ..errors import UserError


@dataclass
class Registration:
    matrix: np.ndarray                 # 3x3, B pixel -> A pixel
    size_a: tuple[int, int]            # (w, h) of stream A
    size_b: tuple[int, int]            # (w, h) of stream B
    model: str = "homography"
    fov: str = "crop"                  # crop: both outputs cut to where B covers A; pad: keep A's full frame
    residual_px: float | None = None   # how well it fitted, where known
    confidence: float | None = None    # cross-modal check (method auto), 0..1; None where not checked
    trusted: bool = True               # False: the estimate failed its own check and must not be used silently
    note: str = ""                     # why it is untrusted
    crop_box: tuple[int, int, int, int] = field(init=False)  # x, y, w, h in A's frame
    _maps: tuple | None = field(init=False, default=None, repr=False, compare=False)  # see _warp_maps

    def __post_init__(self):
        self.matrix = np.asarray(self.matrix, np.float64).reshape(3, 3)
        self.crop_box = common_view(self.matrix, self.size_a, self.size_b) if self.fov == "crop" else \
            (0, 0, *self.size_a)

    @classmethod
    def identity(cls, size_a, size_b) -> "Registration":
        """No registration: B is scaled to A's size (different resolutions are normal)."""
        s = np.diag([size_a[0] / size_b[0], size_a[1] / size_b[1], 1.0])
        return cls(s, tuple(size_a), tuple(size_b), "none", "pad")

    def align(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warp b into a's frame and cut both to the common field of view."""
        if b.shape[1::-1] != self.size_b or a.shape[1::-1] != self.size_a:
            raise UserError(f"frame sizes A {a.shape[1]}x{a.shape[0]}, B {b.shape[1]}x{b.shape[0]} do not match the "
                            f"registration ({self.size_a}, {self.size_b}); recalibrate for these resolutions")
        if self.size_a == self.size_b and (self.model == "none" or np.array_equal(self.matrix, np.eye(3))):
            warped = b  # nothing to warp (a rig calibrated as already aligned)
        elif self.model == "none":
            warped = cv2.resize(b, self.size_a, interpolation=cv2.INTER_LINEAR)
        else:  # straight into the common view, through maps made once
            x, y, w, h = self.crop_box
            return a[y:y + h, x:x + w], cv2.remap(b, *self._warp_maps(), cv2.INTER_LINEAR,
                                                  borderMode=cv2.BORDER_REPLICATE)
        x, y, w, h = self.crop_box
        if (x, y, w, h) == (0, 0, *self.size_a):
            return a, warped
        return a[y:y + h, x:x + w], warped[y:y + h, x:x + w]

    def _warp_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel of the common view comes from in B, as OpenCV's fixed-point maps: warpPerspective
        would recompute this for every frame of a fixed calibration."""
        if self._maps is None:
            x, y, w, h = self.crop_box
            grid = np.stack(np.meshgrid(np.arange(x, x + w), np.arange(y, y + h)), -1).astype(np.float64)
            src = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), np.linalg.inv(self.matrix)).reshape(h, w, 2)
            self._maps = cv2.convertMaps(src.astype(np.float32), None, cv2.CV_16SC2)
        return self._maps

    @property
    def output_size(self) -> tuple[int, int]:
        return self.crop_box[2], self.crop_box[3]

    def save(self, path: str | Path) -> Path:
        data = dict(model=self.model, matrix=self.matrix.round(9).tolist(), size_a=list(self.size_a),
                    size_b=list(self.size_b), fov=self.fov)
        if self.residual_px is not None:
            data["residual_px"] = round(float(self.residual_px), 4)
        if self.confidence is not None:
            data["confidence"] = round(float(self.confidence), 3)
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
        return Path(path)


def common_view(h: np.ndarray, size_a, size_b) -> tuple[int, int, int, int]:
    """The largest centred axis-aligned box of A's frame that B's warped image covers entirely."""
    wa, ha = size_a
    mask = cv2.warpPerspective(np.ones(size_b[::-1], np.uint8), h, (wa, ha), flags=cv2.INTER_NEAREST)
    x0, y0, x1, y1 = 0, 0, wa, ha
    while x1 - x0 > 16 and y1 - y0 > 16:
        box = mask[y0:y1, x0:x1]
        bad = [(box[:, 0] == 0).sum(), (box[:, -1] == 0).sum(), (box[0] == 0).sum(), (box[-1] == 0).sum()]
        if not any(bad):
            break
        side = int(np.argmax(bad))  # shave the side with the most uncovered pixels
        x0, x1, y0, y1 = x0 + (side == 0), x1 - (side == 1), y0 + (side == 2), y1 - (side == 3)
    return x0, y0, x1 - x0, y1 - y0


def load_calibration(path: str | Path, fov: str | None = None) -> Registration:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration file not found: {path}; make one with `defusion-rt calibrate`")
    try:
        data = yaml.safe_load(path.read_text())
        model = data.get("model", "homography")
        if model not in ("affine", "homography"):
            raise ValueError(f"model must be affine or homography, not {model!r}")
        m = np.asarray(data["matrix"], np.float64)
        if model == "affine" and m.shape == (2, 3):
            m = np.vstack([m, [0, 0, 1]])
        if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-9:
            raise ValueError("matrix must be a finite, invertible 3x3 (or 2x3 affine)")
        size_a, size_b = tuple(int(v) for v in data["size_a"]), tuple(int(v) for v in data["size_b"])
        return Registration(m, size_a, size_b, model, fov or data.get("fov", "crop"), data.get("residual_px"),
                            data.get("confidence"))
    except yaml.YAMLError as err:
        raise UserError(f"calibration file {path} is not valid YAML: {yaml_problem(err)}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"calibration file {path} does not parse ({type(err).__name__}: {first}); it needs model, "
                        "matrix, size_a and size_b") from None
