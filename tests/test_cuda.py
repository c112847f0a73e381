"""The CUDA path on a real GPU (skipped without one; benchmarks/gpu/smoke.py runs these on a lent GPU): streamed
fusion on three CUDA streams agrees with the CPU and returns each result on its submission, auto picks the
measured fastest engine, and several pairs share one engine with batched calls."""
import threading

import numpy as np
import pytest
import torch

from defusion_rt.engines import create_engine
from defusion_rt.fusion import Fuser, FusionSettings, StreamedFuser, make_engine
from defusion_rt.model import export_weights
from defusion_rt.pipeline import MultiPipeline, load_multi
from defusion_rt.samples import sample_pair

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu/smoke.py)")


def frames(n: int, size=(160, 120)) -> list[tuple[np.ndarray, np.ndarray]]:
    return [tuple((255 * x[..., ::-1]).astype(np.uint8) for x in sample_pair(i, size)) for i in range(n)]


def test_streamed_cuda_fusion_matches_the_cpu_and_keeps_order(tiny_model):
    pairs = frames(7)
    cpu = StreamedFuser(Fuser(create_engine("eager", "cpu", "fp32", model=tiny_model)), depth=1)
    expected = [cpu.submit([a], [b], k)[0][0][0] for k, (a, b) in enumerate(pairs)]
    gpu = StreamedFuser(Fuser(create_engine("eager", "cuda", "fp32", model=tiny_model)), depth=3)
    got, returned_at = {}, {}
    for k, (a, b) in enumerate(pairs):
        for out, meta in gpu.submit([a], [b], k):
            got[meta], returned_at[meta] = out[0], k
    for out, meta in gpu.flush():
        got[meta] = out[0]
    assert sorted(got) == list(range(7))
    assert all(returned_at[k] >= k for k in returned_at)  # never before its own submission
    for k in range(7):
        assert np.abs(got[k].astype(int) - expected[k].astype(int)).max() <= 2  # TF32/cuDNN vs CPU


def test_auto_on_cuda_is_the_measured_fastest_engine():
    engine = make_engine(FusionSettings(device="cuda"))
    assert (engine.name, engine.precision, engine.device.type) == ("compile", "fp16", "cuda")


def test_two_pairs_share_one_cuda_engine_and_fuse_every_frame(tmp_path, tiny_model):
    weights = export_weights(tiny_model, tmp_path / "w.pt")
    path = tmp_path / "multi.yaml"
    path.write_text(f"""
fusion: {{weights: "{weights}", device: cuda, engine: eager, precision: fp16}}
run: {{progress: false}}
pairs:
  - {{name: a, sources: {{a: "sample:ir", b: "sample:vis", sample_frames: 40}}, render: {{csv: "{tmp_path / 'a.csv'}"}}}}
  - {{name: b, sources: {{a: "sample:ir", b: "sample:vis", sample_frames: 40}}, render: {{csv: "{tmp_path / 'b.csv'}"}}}}
""")
    summary = MultiPipeline(load_multi(str(path))).run()
    assert [(n, sm.fused, sm.dropped) for n, sm in summary.pairs] == [("a", 40, 0), ("b", 40, 0)]
    assert 1.0 <= summary.mean_batch <= 2.0
    for name in "ab":
        rows = (tmp_path / f"{name}.csv").read_text().splitlines()[1:]
        assert [int(r.split(",")[1]) for r in rows] == list(range(40))
    assert not [t for t in threading.enumerate() if t.name == "fusion" or t.name.startswith("feed")]


def test_an_fp16_overflow_on_cuda_is_repaired_in_fp32_when_collected(tiny_model):
    """fp16 results are checked on the device and the flag copied back with the frame; a batch that overflowed
    comes back as the fp32 network's result (here every bright frame is made to overflow)."""
    from defusion_rt.engines import EagerEngine

    class Overflowing(EagerEngine):
        def __call__(self, a, b):
            out = super().__call__(a, b)
            return torch.where(a.mean() > 0.5, out * float("inf"), out)  # decided on the device: no sync
    cuda = torch.device("cuda")
    sf = StreamedFuser(Fuser(Overflowing(tiny_model, cuda, "fp16"), "ir-vis"), depth=3)
    ref = StreamedFuser(Fuser(create_engine("eager", "cuda", "fp32", model=tiny_model), "ir-vis"), depth=1)
    rng = np.random.default_rng(0)
    shots = [(rng.random((64, 80, 3)) * 100 + 155 * (k % 2)).astype(np.uint8) for k in range(6)]
    got = [out[0] for f in shots for out, _ in sf.submit([f], [f[::-1].copy()])] + [o[0] for o, _ in sf.flush()]
    want = [ref.submit([f], [f[::-1].copy()])[0][0][0] for f in shots]
    assert sf.repaired == 3
    assert all(np.abs(g.astype(int) - w.astype(int)).max() <= 2 for g, w in zip(got, want))


@pytest.mark.parametrize("engine", ["eager", "compile"])
def test_grey_sources_enter_the_cuda_network_as_one_channel(engine, tiny_model):
    fuser = Fuser(create_engine(engine, "cuda", "fp16", model=tiny_model), "ir-vis")
    a, b = torch.rand(2, 1, 64, 80, device="cuda"), torch.rand(2, 1, 64, 80, device="cuda")
    grey, three = fuser.fuse_tensors(a, b), fuser.fuse_tensors(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1))
    assert fuser.engine.takes_grey and float((grey - three).abs().max()) < 5e-3  # fp16 rounding of the summed weights
