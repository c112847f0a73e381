"""Reading and writing images: RGB float32 in [0,1] inside the package, OpenCV's BGR uint8 on disk."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import UserError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder}")
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def try_read(path: str | Path) -> np.ndarray | None:
    """HxWx3 RGB float32 in [0,1] (grey replicated), or None when the file cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    img = try_read(path)
    if img is None:
        raise UserError(f"cannot decode image {path}: the file is corrupt or not an image")
    return img


def is_grey(img: np.ndarray, tol: float = 1.5 / 255) -> bool:
    """True when the three channels are equal (grey stored as RGB, as many IR files are)."""
    return img.ndim == 2 or (np.abs(img[..., 0] - img[..., 1]).max() <= tol
                             and np.abs(img[..., 1] - img[..., 2]).max() <= tol)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_image(path: str | Path, img: np.ndarray) -> Path:
    """Write RGB (HxWx3) or grey (HxW) float [0,1] or uint8; a grey RGB image is saved single-channel."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder {path.parent}: {err.strerror}") from None
    data = to_uint8(img) if img.dtype != np.uint8 else img
    if data.ndim == 3:
        data = data[..., 0] if is_grey(data.astype(np.float32) / 255) else cv2.cvtColor(data, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data):
        raise UserError(f"cannot write {path}: check the folder is writable and the extension is an image type")
    return path
