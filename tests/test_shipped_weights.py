"""The weights shipped in the package: they load by default, the IR-visible weights of both networks fuse better
than plain averaging, and the paper network's CUD weights stay its default for the other tasks. See the model
cards for the full tables."""
import numpy as np
import pytest
import torch

from defusion_rt.engines import create_engine
from defusion_rt.fusion import Fuser, pair_folders
from defusion_rt.imageio import read_image
from defusion_rt.metrics import score
from defusion_rt.model import create_model, default_weights, model_for
from defusion_rt.samples import sample_pair
from conftest import shared

TARGET = ("Qabf", "MI", "VIF")


@pytest.fixture(scope="module", params=sorted({"defusion", model_for("ir-vis")}))
def ir_vis_fuser(request):
    """The paper network's IR-visible weights and the default IR-visible model (`--model auto`)."""
    return Fuser(create_engine("eager", "cpu", "fp32", task="ir-vis", model_name=request.param), "ir-vis")


def test_shipped_weights_load_by_default():
    assert default_weights().name == "defusion.pt" and default_weights().is_file()
    assert default_weights(task="ir-vis").name == "defusion_ir_vis.pt"
    assert default_weights(task="multi-focus") == default_weights(task="multi-exposure") == default_weights()
    for task in ("ir-vis", "multi-focus"):
        model = create_model(pretrained=True, task=task)
        assert sum(p.numel() for p in model.parameters()) == 7_874_473


def test_ir_vis_weights_fuse_both_sources(ir_vis_fuser):
    ir, vis = sample_pair(0, (160, 120))
    out = ir_vis_fuser(ir, vis)
    assert out.shape == ir.shape and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    y = out[..., 0].ravel()
    for src in (ir, vis):
        assert np.corrcoef(y, src.mean(2).ravel())[0, 1] > 0.3       # keeps each source's structure
        assert np.abs(out.mean(2) - src.mean(2)).mean() > 0.02         # and is not a copy of either


def test_ir_vis_default_keeps_more_edges_than_averaging_on_the_built_in_scene(ir_vis_fuser):
    """Qabf only: the synthetic scene's large flat areas favour averaging on MI and VIF (real pairs: below)."""
    ir, vis = sample_pair(0, (192, 144))
    assert score(ir, vis, ir_vis_fuser(ir, vis))["Qabf"] > score(ir, vis, (ir + vis) / 2)["Qabf"]


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ir_vis_default_beats_averaging_on_tno(ir_vis_fuser):
    """Held-out real pairs (TNO was not used in training), every fifth, at full size (the metrics depend on
    scale), in the published metric convention."""
    pairs, _ = pair_folders(shared("ir_vis", "TNO", "ir"), shared("ir_vis", "TNO", "vis"))
    rows = {"defusion": [], "average": []}
    for pa, pb in pairs[::5]:
        ir, vis = read_image(pa), read_image(pb)
        rows["defusion"].append(score(ir, vis, ir_vis_fuser(ir, vis)))
        rows["average"].append(score(ir, vis, (ir + vis) / 2))
    mean = {m: {k: np.mean([r[k] for r in v]) for k in TARGET} for m, v in rows.items()}
    assert all(mean["defusion"][k] > mean["average"][k] for k in TARGET), mean


def test_multi_exposure_has_its_own_real_time_weights():
    assert model_for("multi-exposure") == "defusion_fast"
    assert default_weights("defusion_fast", "multi-exposure").name == "defusion_fast_multi_exposure.pt"


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_multi_exposure_default_beats_averaging_on_mefb():
    """Held-out real exposure pairs (MEFB; training saw synthetic exposures of photographs only), every fifth, at
    full size: MEF-SSIM and Qabf above averaging's (issue #22: the CUD weights were below it on both), and MEF-SSIM
    at the Laplacian pyramid's or above (its detail pick; on these five 0.985 against 0.985, four decimals apart)."""
    from defusion_rt.engines.classical import LaplacianEngine
    pairs, _ = pair_folders(shared("multi_exposure", "MEFB", "under"), shared("multi_exposure", "MEFB", "over"))
    fuser = Fuser(create_engine("eager", "cpu", "fp32", task="multi-exposure", model_name="defusion_fast"),
                  "multi-exposure")
    pyramid = Fuser(LaplacianEngine(torch.device("cpu")), "multi-exposure")
    rows = {"network": [], "average": [], "laplacian": []}
    for pa, pb in pairs[::5]:
        a, b = read_image(pa), read_image(pb)
        rows["network"].append(score(a, b, fuser(a, b), "multi-exposure"))
        rows["average"].append(score(a, b, (a + b) / 2, "multi-exposure"))
        rows["laplacian"].append(score(a, b, pyramid(a, b), "multi-exposure"))
    mean = {m: {k: np.mean([r[k] for r in v]) for k in ("MEF-SSIM", "Qabf")} for m, v in rows.items()}
    assert all(mean["network"][k] > mean["average"][k] for k in ("MEF-SSIM", "Qabf")), mean
    assert mean["network"]["MEF-SSIM"] >= mean["laplacian"]["MEF-SSIM"], mean


def test_multi_focus_default_takes_each_region_from_its_sharp_source():
    """The shipped decision map: a textured scene blurred left in one source and right in the other fuses back
    close to the sharp scene (far closer than averaging), whichever source comes first."""
    import cv2
    from defusion_rt.train.synthetic import disk_blur
    rng = np.random.default_rng(0)
    sharp = cv2.resize(rng.random((48, 64, 3)).astype(np.float32), (256, 192), interpolation=cv2.INTER_CUBIC)
    sharp = np.clip(sharp, 0, 1)
    blur = disk_blur(sharp, 3.0)
    left = np.zeros((192, 256, 1), np.float32)
    left[:, :128] = 1
    a, b = left * sharp + (1 - left) * blur, (1 - left) * sharp + left * blur
    fuser = Fuser(create_engine("eager", "cpu", "fp32", task="multi-focus", model_name=model_for("multi-focus")),
                  "multi-focus")
    psnr = lambda x: 10 * np.log10(1 / np.mean((x[:, 8:-8] - sharp[:, 8:-8]) ** 2))  # noqa: E731
    fused, swapped = fuser(a, b), fuser(b, a)
    assert psnr(fused) > psnr((a + b) / 2) + 8, (psnr(fused), psnr((a + b) / 2))
    assert np.abs(fused - swapped).mean() < 0.01
