"""The CUD pretext task (spec section 2): two masked views of one clean image and what each head must predict.

M1 and M2 each are a coarse x fine Bernoulli grid product; pixels neither covers are dealt to one of them by a
third grid, so M1 | M2 covers the image and M1 & M2 (the common region) grows with the keep-probability p.
Masked-out pixels are *replaced* by clipped |N(0,1)| noise, not perturbed.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..config import CUDSettings


class CUDSample(NamedTuple):
    view_a: torch.Tensor    # 3xHxW
    view_b: torch.Tensor
    mask_a: torch.Tensor    # 1xHxW, {0,1}
    mask_b: torch.Tensor


class CUDTargets(NamedTuple):
    common: torch.Tensor
    unique_a: torch.Tensor
    unique_b: torch.Tensor
    region_common: torch.Tensor
    region_a: torch.Tensor
    region_b: torch.Tensor


def _grid(n: int, p: float, size: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    cells = (torch.rand(1, 1, n, n, generator=gen) < p).float()
    return F.interpolate(cells, size=size, mode="nearest")[0]


def sample_masks(size: tuple[int, int], cfg: CUDSettings, gen: torch.Generator,
                 p: float | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Two overlapping masks (1xHxW) whose union is the whole image, and the keep-probability p used."""
    if p is None:
        p = cfg.p_min + torch.rand((), generator=gen).item() / cfg.p_div

    def fine() -> int:
        return cfg.fine_grids[int(torch.randint(len(cfg.fine_grids), (), generator=gen))]

    m1 = _grid(cfg.coarse_grid, p, size, gen) * _grid(fine(), p, size, gen)
    m2 = _grid(cfg.coarse_grid, p, size, gen) * _grid(fine(), p, size, gen)
    # Deal uncovered pixels: grid drawn from {coarse, fine, fine} uniformly.
    third = cfg.coarse_grid if torch.randint(3, (), generator=gen) == 0 else fine()
    g3 = _grid(third, p, size, gen)
    uncovered = (1 - m1) * (1 - m2)
    m1, m2 = m1 + uncovered * g3, m2 + uncovered * (1 - g3)
    if torch.rand((), generator=gen) < cfg.swap_prob:
        m1, m2 = m2, m1
    return m1, m2, p


def make_views(x: torch.Tensor, cfg: CUDSettings, gen: torch.Generator) -> CUDSample:
    """x: 3xHxW in [0,1] -> two views whose masked-out pixels hold clipped half-normal noise."""
    m1, m2, _ = sample_masks(tuple(x.shape[-2:]), cfg, gen)
    n1 = torch.randn(x.shape, generator=gen).abs_().clamp_(max=1)
    n2 = torch.randn(x.shape, generator=gen).abs_().clamp_(max=1)
    return CUDSample(m1 * x + (1 - m1) * n1, m2 * x + (1 - m2) * n2, m1, m2)


def targets(x: torch.Tensor, mask_a: torch.Tensor, mask_b: torch.Tensor) -> CUDTargets:
    """Common = (M1 & M2) x, unique_i = (Mi - common region) x; works batched or per sample."""
    mc = mask_a * mask_b
    ra, rb = mask_a - mc, mask_b - mc
    return CUDTargets(mc * x, ra * x, rb * x, mc, ra, rb)
