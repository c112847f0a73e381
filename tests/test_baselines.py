import numpy as np
import pytest
import torch

from defusion_rt.engines import CLASSICAL, create_engine
from defusion_rt.metrics import score


def _pair(rng, h=64, w=80):
    scene = torch.from_numpy(rng.random((1, 3, h, w)).astype(np.float32))
    scene = torch.nn.functional.avg_pool2d(scene, 3, 1, 1)
    a, b = scene.clone(), scene.clone()
    a[..., w // 2:] = 0.5  # a keeps the left half in focus, b the right
    b[..., : w // 2] = 0.5
    return scene, a, b


def test_average_and_max_are_exact(rng):
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert torch.allclose(create_engine("average", "cpu")(a, b), (a + b) / 2)
    m = create_engine("max", "cpu")(a.mean(1, keepdim=True).expand(-1, 3, -1, -1), b.mean(1, keepdim=True).expand(-1, 3, -1, -1))
    assert torch.allclose(m[:, 0], torch.maximum(a.mean(1), b.mean(1)))


@pytest.mark.parametrize("name", sorted(CLASSICAL))
def test_every_baseline_keeps_shape_and_range(rng, name):
    _, a, b = _pair(rng, 37, 51)
    out = create_engine(name, "cpu")(a, b)
    assert out.shape == a.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1


def test_laplacian_recovers_complementary_detail_better_than_average(rng):
    scene, a, b = _pair(rng)
    lap = create_engine("laplacian", "cpu")(a, b)
    avg = create_engine("average", "cpu")(a, b)
    assert (lap - scene).abs().mean() < (avg - scene).abs().mean()
    sa, sb = (t[0].permute(1, 2, 0).numpy() for t in (a, b))
    assert score(sa, sb, lap[0].permute(1, 2, 0).numpy())["Qabf"] > score(sa, sb, avg[0].permute(1, 2, 0).numpy())["Qabf"]


def test_laplacian_of_identical_inputs_is_identity(rng):
    x = torch.rand(1, 3, 33, 47)
    assert torch.allclose(create_engine("laplacian", "cpu")(x, x), x, atol=1e-5)
