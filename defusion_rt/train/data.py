"""Training images for CUD: folders of JPEG/PNG/BMP images, grey or colour, searched recursively.

Every sample is a pure function of (seed, global sample number), so a resumed run sees exactly the data the
uninterrupted run would have, whatever the number of loader workers.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..config import Settings
from ..errors import UserError
from ..imageio import list_images, try_read
from .cud import make_views, targets


def random_resized_crop(img: np.ndarray, size: int, scale: tuple, rng: np.random.Generator) -> np.ndarray:
    """torchvision RandomResizedCrop semantics: area in `scale`, log-uniform aspect in [3/4, 4/3]."""
    h, w = img.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            break
    else:  # centre crop of the whole image
        ch = cw = min(h, w)
        y, x = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(img[y:y + ch, x:x + cw], (size, size), interpolation=cv2.INTER_LINEAR)


def color_jitter(img: np.ndarray, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation, each a factor from U(lo, hi), in random order (hue untouched)."""
    def grey(x):
        return x @ np.array([0.299, 0.587, 0.114], np.float32)

    ops = [lambda x, f: x * f,
           lambda x, f: f * x + (1 - f) * grey(x).mean(),
           lambda x, f: f * x + (1 - f) * grey(x)[..., None]]
    for i in rng.permutation(3):
        img = np.clip(ops[i](img, rng.uniform(lo, hi)), 0, 1)
    return img.astype(np.float32)


class CUDDataset(Dataset):
    """Index = global sample number. Returns clean image, two views, two masks and how many files failed."""

    def __init__(self, roots: str | list[str], settings: Settings):
        roots = [roots] if isinstance(roots, (str, bytes)) or not hasattr(roots, "__iter__") else list(roots)
        self.files = [f for r in roots for f in list_images(r, recursive=True)]
        if not self.files:
            raise UserError(f"no images (JPEG/PNG/BMP) found under {', '.join(map(str, roots))}; point --data at "
                            "a folder of images")
        self.s = settings

    def __len__(self) -> int:  # the sampler decides the length; this is one epoch
        return len(self.files)

    @lru_cache(maxsize=2)  # one permutation per epoch, not one per sample
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.s.train.seed, epoch]).permutation(len(self.files))

    def _file(self, g: int) -> int:
        epoch, pos = divmod(g, len(self.files))
        return int(self._order(epoch)[pos])

    def photo(self, g: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Sample g's photograph: a random resized crop, colour-jittered; and how many unreadable files it skipped."""
        tr = self.s.train
        skipped = 0
        img = try_read(self.files[self._file(g)])
        while img is None:  # a corrupt file is skipped and counted, never fatal
            skipped += 1
            if skipped > 20:
                raise UserError(f"more than 20 unreadable images in a row under {self.files[0].parent}")
            img = try_read(self.files[int(rng.integers(len(self.files)))])
        # Crop first: jittering the crop costs crop^2 pixels instead of the whole photograph's.
        img = random_resized_crop(img, tr.crop, tuple(tr.crop_scale), rng)
        return color_jitter(img, *tr.jitter, rng), skipped

    def __getitem__(self, g: int) -> dict:
        rng = np.random.default_rng([self.s.train.seed, 7, g])
        img, skipped = self.photo(g, rng)
        x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        views = make_views(x, self.s.cud, gen)
        return dict(clean=x, view_a=views.view_a, view_b=views.view_b, mask_a=views.mask_a,
                    mask_b=views.mask_b, skipped=skipped)


class RangeSampler(Sampler):
    """Global sample numbers for this rank from iteration `start` on: rank r takes its slice of each step."""

    def __init__(self, start_iter: int, end_iter: int, batch: int, rank: int = 0, world: int = 1):
        self.start, self.end, self.batch, self.rank, self.world = start_iter, end_iter, batch, rank, world

    def __iter__(self):
        for it in range(self.start, self.end):
            base = (it * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return (self.end - self.start) * self.batch


def batch_targets(batch: dict):
    return targets(batch["clean"], batch["mask_a"], batch["mask_b"])
