import numpy as np
import pytest
import torch

from defusion_rt.config import CUDSettings, LossSettings
from defusion_rt.model import Decomposition
from defusion_rt.train import LossSchedule, cud_loss, make_views, sample_masks, targets

CFG = CUDSettings()


def _fractions(p: float, n: int = 60) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(1)
    common, union = [], []
    for _ in range(n):
        m1, m2, _ = sample_masks((256, 256), CFG, gen, p=p)
        common.append((m1 * m2).mean().item())
        union.append(((m1 + m2) > 0).float().mean().item())
    return float(np.mean(common)), float(np.min(union))


def test_union_covers_every_pixel_and_masks_are_binary():
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        m1, m2, p = sample_masks((128, 96), CFG, gen)
        assert 0.1 <= p < 0.993
        assert ((m1 + m2) >= 1).all()
        assert set(torch.unique(m1).tolist()) <= {0.0, 1.0} and set(torch.unique(m2).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("p, lo, hi", [(0.2, 0.0, 0.03), (0.5, 0.03, 0.2), (0.9, 0.55, 0.85)])
def test_common_fraction_rises_with_p_as_the_spec_says(p, lo, hi):
    common, min_union = _fractions(p)
    assert lo <= common <= hi
    assert min_union == 1.0


def test_average_common_fraction_matches_spec():
    gen = torch.Generator().manual_seed(3)
    fr = []
    for _ in range(300):
        m1, m2, _ = sample_masks((128, 128), CFG, gen)
        fr.append((m1 * m2).mean().item())
    assert 0.17 < np.mean(fr) < 0.27  # spec: about 0.22


def test_views_replace_masked_pixels_with_clipped_half_normal():
    gen = torch.Generator().manual_seed(0)
    x = torch.full((3, 64, 64), 0.25)
    v = make_views(x, CFG, gen)
    kept = v.mask_a.expand_as(x) == 1
    assert torch.equal(v.view_a[kept], x[kept])
    noise = v.view_a[~kept]
    assert noise.min() >= 0 and noise.max() <= 1
    assert 0.5 < noise.mean() < 0.75  # E[min(|N|, 1)] = 0.63
    assert 0.2 < (noise == 1).float().mean() < 0.45  # ~32% saturate


def test_targets_split_the_clean_image():
    x = torch.rand(3, 8, 8)
    m1 = torch.zeros(1, 8, 8); m1[..., :5] = 1
    m2 = torch.zeros(1, 8, 8); m2[..., 3:] = 1
    t = targets(x, m1, m2)
    assert torch.allclose(t.common + t.unique_a + t.unique_b, x)  # the union covers everything
    assert torch.equal(t.region_common[0, 0], torch.tensor([0, 0, 0, 1, 1, 0, 0, 0.]))


def test_loss_schedule_values():
    s = LossSchedule(LossSettings())
    assert s.alpha(2999) is None
    assert s.alpha(3500) == pytest.approx(0.15 * (3500 / 7000) ** 2)
    assert s.alpha(20000) == pytest.approx(0.15)
    assert s.alpha(40001) == pytest.approx(0.015)
    assert s.beta(16999) == 0 and s.beta(17000) == pytest.approx(0.25)
    assert s.beta(24000) == pytest.approx(1.0) and s.beta(100000) == pytest.approx(1.0)
    short = LossSchedule(LossSettings(), scale=0.1)  # same shape, milestones x 0.1
    assert short.alpha(299) is None and short.beta(1700) == pytest.approx(0.25)


def test_loss_terms_are_masked_l1_summed_over_batch():
    x = torch.rand(2, 3, 8, 8)
    m1 = torch.ones(2, 1, 8, 8)
    m2 = torch.zeros(2, 1, 8, 8); m2[..., :4] = 1
    t = targets(x, m1, m2)
    perfect = Decomposition(t.common, t.unique_a, t.unique_b, x)
    s = LossSchedule(LossSettings())
    assert cud_loss(perfect, t, x, 0, s)["total"].item() == pytest.approx(0, abs=1e-7)
    off = Decomposition(t.common, t.unique_a, t.unique_b, x + 0.1)
    assert cud_loss(off, t, x, 30000, s)["recon"].item() == pytest.approx(2 * 0.1, rel=1e-4)  # sum over batch 2
    leak = Decomposition(t.common + 1.0 * (1 - t.region_common), t.unique_a, t.unique_b, x)
    assert cud_loss(leak, t, x, 0, s)["common"].item() == pytest.approx(0, abs=1e-7)  # warm-up ignores outside
    assert cud_loss(leak, t, x, 20000, s)["common"].item() == pytest.approx(2 * 0.15 * 0.5, rel=1e-4)
