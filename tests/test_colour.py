"""Colour output of the default networks: the fused image keeps the colour source's hue (a network that casts
green grass brown is worse than averaging, whatever its metrics). Measured on a synthetic colourful scene made
two ways, the way each task's pairs differ: defocused halves (multi-focus) and two exposures (multi-exposure)."""
import cv2
import numpy as np
import pytest

from defusion_rt.engines import create_engine
from defusion_rt.fusion import Fuser
from defusion_rt.model import default_weights, model_for
from defusion_rt.samples import sample_pair
from defusion_rt.train.synthetic import defocus_pair, exposure_pair


def colourful(size: int = 192) -> np.ndarray:
    """Saturated patches of six hues over the built-in scene's texture, RGB float [0,1]."""
    _, vis = sample_pair(0, (size, size))
    tex = vis.mean(2, keepdims=True)
    hues = np.linspace(0, 300, 6).astype(np.float32)
    hsv = np.zeros((size, size, 3), np.float32)
    hsv[..., 0] = np.repeat(hues, size // 6 + 1)[:size][None, :]
    hsv[..., 1], hsv[..., 2] = 0.8, 0.35 + 0.6 * tex[..., 0]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def median_hue_error(ref: np.ndarray, out: np.ndarray) -> float:
    h_ref = cv2.cvtColor(ref.astype(np.float32), cv2.COLOR_RGB2HSV)
    h_out = cv2.cvtColor(np.clip(out, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
    saturated = (h_ref[..., 1] > 0.3) & (h_ref[..., 2] > 0.2)
    d = np.abs(h_ref[..., 0] - h_out[..., 0])
    return float(np.median(np.minimum(d, 360 - d)[saturated]))


@pytest.mark.parametrize("task, make", [("multi-focus", defocus_pair),
                                        ("multi-exposure", exposure_pair)])
def test_default_network_keeps_the_hue(task, make):
    img = colourful()
    a, b = (x.astype(np.float32) for x in make(img, np.random.default_rng(0)))
    model = model_for(task)
    fuser = Fuser(create_engine("eager", "cpu", "fp32", weights=str(default_weights(model, task)), model_name=model),
                  task)
    fused = fuser(a, b)
    average = (a + b) / 2
    assert median_hue_error(img, fused) < max(8.0, 2 * median_hue_error(img, average)), \
        f"{model} on {task}: hue moved {median_hue_error(img, fused):.1f} degrees"


def test_ir_vis_colour_keeps_the_visible_hue():
    ir, _ = sample_pair(0, (192, 192))
    vis = colourful()
    model = model_for("ir-vis")
    fuser = Fuser(create_engine("eager", "cpu", "fp32", weights=str(default_weights(model, "ir-vis")),
                                model_name=model), "ir-vis", colour=True)
    assert median_hue_error(vis, fuser(ir, vis)) < 8.0
