"""The weights shipped in the package: they load by default and fuse. See the model card for how good they are."""
import numpy as np
import pytest

from defusion_rt.engines import create_engine
from defusion_rt.fuse import Fuser
from defusion_rt.metrics import score
from defusion_rt.model import create_model, default_weights
from defusion_rt.samples import sample_pair


@pytest.fixture(scope="module")
def fused():
    ir, vis = sample_pair(0, (160, 120))
    out = Fuser(create_engine("eager", "cpu", "fp32"), "ir-vis")(ir, vis)  # no weights given: the shipped ones
    return ir, vis, out


def test_shipped_weights_load_by_default():
    assert default_weights().is_file()
    model = create_model(pretrained=True)
    assert sum(p.numel() for p in model.parameters()) == 7_874_473


def test_shipped_weights_fuse_both_sources(fused):
    ir, vis, out = fused
    assert out.shape == ir.shape and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    y = out[..., 0].ravel()
    for src in (ir, vis):
        g = src.mean(2).ravel()
        assert np.corrcoef(y, g)[0, 1] > 0.3       # keeps each source's structure
        assert np.abs(out.mean(2) - src.mean(2)).mean() > 0.02  # and is not a copy of either
    s = score(ir, vis, out)
    assert 5.0 < s["EN"] < 8.0 and s["SSIM"] > 1.0


@pytest.mark.xfail(strict=True, reason="the shipped CPU-trained weights (2.9k iterations, ~0.5% of the paper's "
                                       "samples) are still below plain averaging on Qabf; see MODEL_CARD.md")
def test_shipped_weights_beat_averaging_on_qabf(fused):
    ir, vis, out = fused
    assert score(ir, vis, out)["Qabf"] > score(ir, vis, (ir + vis) / 2)["Qabf"]
