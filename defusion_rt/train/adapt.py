"""Adaptation with fusion losses (`train --adapt ir-vis`): pairs of registered IR and visible images, no ground truth.

The IR-visible literature trains fusion networks with unsupervised losses against the two sources: an intensity
term pulling F towards the per-pixel maximum of the sources (hot targets stay bright) and a gradient term pulling
|grad F| towards the larger of the sources' Sobel magnitudes (texture from whichever source has it). These need
far fewer iterations than CUD, so they turn CUD weights into a good IR-visible fuser on a CPU. Every sample is a
function of (seed, sample number), as for CUD, so `--resume` continues exactly.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import Settings, number_range
from ..errors import UserError
from ..fusion import pair_folders
from ..imageio import try_read
from ..model import Decomposition
from ..tasks import LUMA, check_task

ADAPT_TASKS = ("ir-vis",)


def _pairs(dirs_a: list[str], dirs_b: list[str]) -> list[tuple]:
    if len(dirs_a) != len(dirs_b):
        raise UserError(f"--a is given {len(dirs_a)} time(s) and --b {len(dirs_b)}; give one --b per --a")
    pairs = []
    for da, db in zip(dirs_a, dirs_b):
        found, _ = pair_folders(da, db)
        if not found:
            raise UserError(f"no file names in common between {da} and {db}; pairs are matched by name")
        pairs += found
    return pairs


class PairDataset(Dataset):
    """Index = global sample number; returns grey sources a, b (1xSxS, one shared random crop) and failures."""

    def __init__(self, dirs_a: list[str], dirs_b: list[str], settings: Settings):
        self.pairs = _pairs(dirs_a, dirs_b)
        self.s = settings
        self.zoom = number_range("adapt.zoom", settings.adapt.zoom)

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        pa, pb = self.pairs[i]
        a, b = try_read(pa), try_read(pb)
        if a is None or b is None:
            return None
        if b.shape[:2] != a.shape[:2]:  # registered sets can differ by a pixel after cropping
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        grey = np.asarray(LUMA, np.float32)
        return a @ grey, b @ grey

    def _crop(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One random square of crop x zoom source pixels, resized to crop: near the sources' own scale, since
        inference runs at full resolution (shrunk crops teach the network finer texture than it will see)."""
        size, (lo, hi) = self.s.train.crop, self.zoom
        h, w = a.shape
        side = int(round(size * math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        side = max(8, min(side, h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        flip = rng.random() < 0.5
        out = []
        for img in (a, b):
            c = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
            out.append(c[:, ::-1] if flip else c)
        return out[0], out[1]

    def __getitem__(self, g: int) -> dict:
        rng = np.random.default_rng([self.s.train.seed, 11, g])
        epoch, pos = divmod(g, len(self.pairs))
        i = int(np.random.default_rng([self.s.train.seed, 5, epoch]).permutation(len(self.pairs))[pos])
        skipped, images = 0, self._read(i)
        while images is None:
            skipped += 1
            if skipped > 20:
                raise UserError(f"more than 20 unreadable image pairs in a row, e.g. {self.pairs[i][0]}")
            i = int(rng.integers(len(self.pairs)))
            images = self._read(i)
        a, b = self._crop(*images, rng)
        to_t = lambda x: torch.from_numpy(np.ascontiguousarray(x))[None]  # noqa: E731
        sample = dict(a=to_t(a), b=to_t(b), skipped=skipped)
        if self.s.adapt.stability:
            sample |= dict(a2=to_t(next_frame(a, rng)), b2=to_t(next_frame(b, rng)))
        return sample


def next_frame(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same view a frame later from a still camera: fresh sensor noise (sigma up to 3 levels), a gain that
    drifts up to 3% (a thermal camera's AGC), 8-bit again. Nothing moves, so a fused image may change only within
    what these changes span."""
    gain, sigma = rng.uniform(0.97, 1.03), rng.uniform(0.0, 3.0) / 255
    noisy = x * gain + rng.normal(0.0, sigma, x.shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.float32) / 255


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|grad| of Bx1xHxW by 3x3 Sobel, replicate borders (L1 norm |gx| + |gy|, smooth to differentiate)."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()])[:, None]
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    return g.abs().sum(1, keepdim=True)


def contrast_mix(a: torch.Tensor, b: torch.Tensor, size: int = 7, p: float = 4.0, floor: float = 0.0) -> torch.Tensor:
    """Bx1xHxW sources mixed per pixel with weights (local std + floor) ** p (MEF-SSIM's structure weights): where
    one source is flat (a warm IR background) the other's detail wins, as in the Laplacian pyramid's choice; where
    both are flatter than the floor, they mix evenly."""
    def std(x: torch.Tensor) -> torch.Tensor:
        mean = F.avg_pool2d(x, size, 1, size // 2, count_include_pad=False)
        sq = F.avg_pool2d(x * x, size, 1, size // 2, count_include_pad=False)
        return (sq - mean * mean).clamp_min(0).add(1e-6).sqrt()
    with torch.autocast(a.device.type, enabled=False):  # std ** 4 underflows in bf16
        a, b = a.float(), b.float()
        wa, wb = (std(a) + floor) ** p, (std(b) + floor) ** p
        return (wa * a + wb * b) / (wa + wb)


def flicker_loss(a: tuple, b: tuple, f: tuple, radius: int = 2) -> torch.Tensor:
    """metrics/temporal.py's flicker between two frames (each argument a (then, now) pair, Bx1xHxW on 0-1): the
    change of F beyond the range the sources' changes span within radius, as a mean."""
    da, db, df = a[1] - a[0], b[1] - b[0], f[1] - f[0]
    k = 2 * radius + 1
    hi = F.max_pool2d(torch.maximum(da, db), k, 1, radius)
    lo = -F.max_pool2d(-torch.minimum(da, db), k, 1, radius)
    return (F.relu(df - hi) + F.relu(lo - df)).mean()


class FusionObjective:
    """Intensity + gradient fusion losses on the fused head (optionally a contrast target, a teacher's fused image
    and the flicker against each pair's next frame); the other heads are left to drift."""

    def __init__(self, task: str, dirs_a: list[str], dirs_b: list[str], settings: Settings):
        if check_task(task) not in ADAPT_TASKS:
            raise UserError(f"--adapt with --a/--b pairs supports ir-vis, not '{task}' (multi-focus and "
                            "multi-exposure make their pairs from --data photographs)")
        self.dataset = PairDataset(dirs_a, dirs_b, settings)
        self.w_int, self.w_grad = settings.adapt.intensity, settings.adapt.gradient
        self.w_distill = settings.adapt.distill
        self.teacher = None
        if settings.adapt.teacher:  # another network's fused image as a third target (knowledge distillation)
            from ..model import create_model, variant_for_weights
            path = settings.adapt.teacher
            self.teacher = create_model(variant_for_weights(path), weights=path).eval().requires_grad_(False)
        self.w_contrast, self.floor = settings.adapt.contrast, settings.adapt.contrast_floor
        self.w_stable = settings.adapt.stability
        self.terms = ("intensity", "gradient") + (("contrast",) if self.w_contrast else ()) \
            + (("distill",) if self.teacher else ()) + (("stability",) if self.w_stable else ())

    def rescale(self, total_iterations: int) -> None:
        """No loss milestones here; the learning-rate steps are the only schedule."""

    @staticmethod
    def _sources(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Grey sources; with stability on, each pair is followed in the batch by its next frame (next_frame)."""
        if "a2" not in batch:
            return batch["a"], batch["b"]
        return torch.cat([batch["a"], batch["a2"]]), torch.cat([batch["b"], batch["b2"]])

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._sources(batch)
        return a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)  # the ir-vis convention

    def loss(self, out: Decomposition, batch: dict, it: int) -> dict[str, torch.Tensor]:
        f = out.fused.mean(1, keepdim=True)  # the grey output of ir-vis inference
        a, b = self._sources(batch)
        intensity = (f - torch.maximum(a, b)).abs().mean()
        grad_target = torch.maximum(sobel_magnitude(a), sobel_magnitude(b))
        gradient = (sobel_magnitude(f) - grad_target).abs().mean()
        terms = {"intensity": self.w_int * intensity, "gradient": self.w_grad * gradient}
        if self.w_contrast:
            terms["contrast"] = self.w_contrast * (f - contrast_mix(a, b, floor=self.floor)).abs().mean()
        if self.w_stable:
            terms["stability"] = self.w_stable * flicker_loss(*(x.chunk(2) for x in (a, b, f)))
        if self.teacher is not None:
            terms["distill"] = self.w_distill * (f - self._teacher_fused(batch)).abs().mean()
        terms["total"] = sum(terms.values())
        return terms

    @torch.no_grad()
    def _teacher_fused(self, batch: dict) -> torch.Tensor:
        a, b = self.inputs(batch)
        teacher = self.teacher.to(a.device)
        bf16 = a.device.type == "cuda" or bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
        with torch.autocast(a.device.type, dtype=torch.bfloat16, enabled=bf16):
            return teacher(a, b).fused.float().clamp(0, 1).mean(1, keepdim=True)

    def extras(self, it: int) -> dict:
        return {}
