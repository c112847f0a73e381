import math

import cv2
import numpy as np
import pytest

from defusion_rt import metrics as M
from defusion_rt.metrics.noref import QA, QG


@pytest.fixture
def scene(rng):
    base = cv2.resize(rng.random((16, 16)), (96, 96), interpolation=cv2.INTER_CUBIC)
    return np.clip(base * 200 + 20 + rng.random((96, 96)) * 30, 0, 255).round()


@pytest.mark.parametrize("img, expected", [
    (np.full((8, 8), 77.0), 0.0),                                    # constant: no information
    (np.array([[0.0, 255.0] * 4] * 8), 1.0),                         # two equally likely levels: 1 bit
    (np.arange(256, dtype=float).reshape(16, 16), 8.0),              # every level once: 8 bits
])
def test_entropy_known_values(img, expected):
    assert M.entropy(img) == pytest.approx(expected)


def test_sd_sf_ag_on_a_ramp():
    ramp = np.tile(np.arange(0, 100, 5.0), (10, 1))  # +5 per column, constant down columns
    assert M.std_dev(np.array([[0.0, 255.0]] * 2)) == pytest.approx(127.5)
    assert M.spatial_frequency(ramp) == pytest.approx(5.0)
    assert M.average_gradient(ramp) == pytest.approx(5 / math.sqrt(2))
    assert M.spatial_frequency(np.full((5, 5), 9.0)) == 0 and M.average_gradient(np.full((5, 5), 9.0)) == 0


def test_intensity_shift_keeps_en_sd_sf_but_not_ssim(scene):
    shifted = scene + 10  # stays inside 0..255
    assert M.entropy(shifted) == pytest.approx(M.entropy(scene))
    assert M.std_dev(shifted) == pytest.approx(M.std_dev(scene))
    assert M.spatial_frequency(shifted) == pytest.approx(M.spatial_frequency(scene))
    assert M.ssim(scene, scene) == pytest.approx(1.0)
    assert M.ssim(scene, shifted) < 0.999


def test_mutual_information_of_identical_images_is_their_entropy(scene):
    nats = M.entropy(scene) * math.log(2)
    assert M.mutual_information(scene, scene) == pytest.approx(nats, rel=1e-9)
    assert M.mutual_information(scene, np.full_like(scene, 3)) == pytest.approx(0, abs=1e-12)


def test_identical_sources_and_fusion_give_the_maxima(scene):
    s = M.score(scene / 255, scene / 255, scene / 255)
    assert s["SSIM"] == pytest.approx(2.0, abs=1e-6)  # summed over two sources
    assert s["VIF"] == pytest.approx(2.0, abs=1e-6)
    perfect_q = QG["gamma"] / (1 + math.exp(QG["kappa"] * (1 - QG["sigma"]))) * \
        QA["gamma"] / (1 + math.exp(QA["kappa"] * (1 - QA["sigma"])))
    assert s["Qabf"] == pytest.approx(perfect_q, rel=1e-6)  # float32 as published; ~0.975: Xydeas-Petrovic's sigmoids top out there
    assert M.mef_ssim([scene, scene], scene) == pytest.approx(1.0, abs=1e-6)


def test_scd_of_the_sum_is_two(rng):
    a, b = rng.random((40, 40)) * 100, rng.random((40, 40)) * 100
    assert M.scd(a, b, a + b) == pytest.approx(2.0)


def test_psnr_known_value():
    ref = np.full((10, 10), 100.0)
    assert M.psnr(ref, ref + 1) == pytest.approx(10 * math.log10(255 ** 2))
    assert M.psnr(ref, ref) == 100.0  # capped


def test_blurred_fusion_scores_lower_than_sharp(scene):
    a = scene.copy(); a[:, 48:] = scene[:, 48:].mean()  # a sees the left half, b the right
    b = scene.copy(); b[:, :48] = scene[:, :48].mean()
    sharp = M.score(a / 255, b / 255, scene / 255)
    blurred = M.score(a / 255, b / 255, cv2.GaussianBlur(scene, (0, 0), 2) / 255)
    for k in ["SF", "AG", "Qabf"]:
        assert blurred[k] < sharp[k], k


def test_mef_ssim_prefers_the_detailed_source(scene):
    flat = np.full_like(scene, scene.mean())
    assert M.mef_ssim([scene, flat], scene) > M.mef_ssim([scene, flat], (scene + flat) / 2)


def test_colour_inputs_use_bt601_luma():
    rgb = np.zeros((4, 4, 3), np.uint8); rgb[..., 1] = 200
    assert M.to_grey255(rgb)[0, 0] == round(0.587 * 200)
    assert M.to_grey255(np.full((2, 2), 0.5))[0, 0] == 128
