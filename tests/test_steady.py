"""fusion/steady.py: a fused video changes only as far as its sources do nearby."""
import numpy as np
import pytest

from defusion_rt.errors import UserError
from defusion_rt.fusion.stage import FusionStage
from defusion_rt.fusion.steady import Steady
from defusion_rt.metrics.temporal import Flicker
from defusion_rt.pipeline import Pipeline
from defusion_rt.pipeline.settings import load_pipeline
from defusion_rt.render import RenderStage
from test_pipeline import SlowEngine, settings


def _scene(t: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy uint8 sources, a bright square moving right 3 px a frame in A."""
    a, b = np.full((40, 60, 3), 80.0), np.full((40, 60, 3), 150.0)
    a[10:20, 5 + 3 * t:15 + 3 * t] = 230
    return (np.clip(np.rint(x + rng.normal(0, 1.0, x.shape)), 0, 255).astype(np.uint8) for x in (a, b))


def _mix(w, a, b) -> np.ndarray:
    return np.clip(np.rint(w * a + (1 - w) * b), 0, 255).astype(np.uint8)


def test_a_fixed_mix_of_the_sources_passes_unchanged():
    rng, steady = np.random.default_rng(0), Steady()
    for t in range(8):
        a, b = _scene(t, rng)
        fused = _mix(0.3, a, b)
        assert np.abs(steady(a, b, fused).astype(int) - fused).max() <= 1  # rounding of the mix


def test_weights_that_wander_while_the_scene_holds_still_do_not_flicker():
    rng, steady = np.random.default_rng(1), Steady()
    raw, held = Flicker(), Flicker()
    a, b = _scene(0, rng)
    for t in range(10):
        w = 0.5 + 0.02 * rng.standard_normal((40, 60, 1))  # a network's weights, jittering each frame
        fused = _mix(w, a, b)
        raw.add(a, b, fused)
        held.add(a, b, steady(a, b, fused))
    assert raw.result()["flicker"] > 0.5 and held.result()["flicker"] == 0


def test_where_a_source_moves_the_output_follows_the_network():
    rng, steady = np.random.default_rng(2), Steady()
    for t in range(6):
        a, b = _scene(t, rng)
        fused = np.maximum(a, b)  # the square shows wherever it goes
        out = steady(a, b, fused)
    assert abs(int(out[15, 5 + 3 * 5 + 5, 0]) - 230) <= 4 and abs(int(out[15, 2, 0]) - 150) <= 4


def test_in_a_still_scene_the_output_follows_the_network_only_as_far_as_the_sensor_noise_lets_it():
    steady = Steady()
    a = b = np.full((8, 8, 3), 100, np.uint8)
    steady(a, b, a)
    outs = [int(steady(a, b, np.full_like(a, 130))[4, 4, 0]) for _ in range(20)]
    assert outs == [100] * 20  # noise-free still sources: no catch-up by default (every leaked level is flicker)
    rng, noisy = np.random.default_rng(4), Steady()
    shot = lambda: np.clip(np.rint(100 + rng.normal(0, 1.5, a.shape)), 0, 255).astype(np.uint8)  # noqa: E731
    noisy(shot(), shot(), a)
    outs = [int(noisy(shot(), shot(), np.full_like(a, 130))[4, 4, 0]) for _ in range(40)]
    assert outs[0] < 110 and outs[-1] == 130  # a camera's noise lets it follow, a few levels a frame


def test_an_output_left_far_behind_catches_up_a_level_a_frame_towards_what_the_network_keeps_saying():
    steady = Steady(stale=8, leak=1, memory=8)
    a = b = np.full((8, 8, 3), 100, np.uint8)
    steady(a, b, a)
    outs = [int(steady(a, b, np.full_like(a, 130))[4, 4, 0]) for _ in range(40)]
    # starts once the network's running mean is 8 levels away, stops within 8 of it
    assert outs[:4] == [100, 100, 101, 102] and outs[-1] == 100 + 22
    jumpy = Steady(stale=8, leak=1, memory=8)  # a network that jumps between two looks every frame
    jumpy(a, b, a)
    outs = [int(jumpy(a, b, np.full_like(a, 130 if t % 2 else 100))[4, 4, 0]) for t in range(60)]
    assert max(abs(x - y) for x, y in zip(outs, outs[1:])) <= 1  # never back and forth with the network
    assert outs[-1] == outs[-20] and abs(outs[-1] - 115) <= 8  # settles within 8 of the looks' mean


class JitterEngine(SlowEngine):
    """The average, its brightness jumping 10 levels every other frame: a network's worst flicker."""

    def __call__(self, a, b):
        self.calls += 1
        return (a + b) / 2 + (0.04 if self.calls % 2 else 0.0)


def test_the_pipeline_steadies_by_default_and_not_when_told(monkeypatch):
    seen, render = [], RenderStage.__call__

    def record(self, item, stats):
        seen.append(item)
        return render(self, item, stats)
    monkeypatch.setattr(RenderStage, "__call__", record)
    flicker = {}
    for steady in (True, False):
        seen.clear()
        s = settings(sources=dict(sample_frames=10), fusion=dict(steady=steady), render=dict(overlay=False))
        assert Pipeline(s, engine=JitterEngine(0.0)).run().fused == 10
        meter = Flicker()
        for item in seen:
            meter.add(item.a, item.b, item.image)
        flicker[steady] = meter.result()["flicker"]
    assert flicker[False] > 5 and flicker[True] < 0.5


def test_a_grey_output_stays_grey_and_is_bounded_by_the_sources_luma():
    """IR-visible without colour: one grey channel, bounded by the luma the network saw, so no colour creeps in."""
    rng, steady, raw, meter = np.random.default_rng(3), Steady(grey=True), Flicker(), Flicker()
    tint = rng.integers(100, 200, (40, 60))  # the visible image's colours: its blue differs from its green
    for t in range(8):
        a, b = _scene(t, rng)
        b = b.copy()
        b[..., 0] = tint
        grey = _mix(0.5 + 0.05 * rng.standard_normal((40, 60)), a[..., 0], b[..., 1])
        fused = np.repeat(grey[..., None], 3, 2)
        raw.add(a[..., ::-1], b[..., ::-1], fused)
        out = steady(a, b, fused)
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
        meter.add(a[..., ::-1], b[..., ::-1], out)  # the metric reads RGB
    assert raw.result()["flicker"] > 1 and meter.result()["flicker"] < 0.2
    grey_sources = Steady(grey=True)  # sources that arrive grey already take the same path
    for t in range(2):
        a, b = _scene(t, rng)
        assert grey_sources(a[..., 0], b[..., 0], np.repeat(a[..., :1], 3, 2)).shape == (40, 60, 3)


def test_a_pipeline_file_turns_the_catch_up_on_and_a_negative_one_is_one_line(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("fusion:\n  steady_catch_up: 1\n")
    bad.write_text("fusion:\n  steady_catch_up: -1\n")
    s = load_pipeline(str(good))
    assert FusionStage(s.fusion, SlowEngine(0.0)).steady.leak == 1
    assert FusionStage(load_pipeline().fusion, SlowEngine(0.0)).steady.leak == 0  # the default: none
    with pytest.raises(UserError, match="steady_catch_up' must be 0 or more"):
        load_pipeline(str(bad))
