"""Every network engine against fp32 eager, on random and realistic inputs, with a clear message where one
cannot run on this machine."""
import numpy as np
import pytest
import torch

from defusion_rt.engines import BUILT, EagerEngine, create_engine
from defusion_rt.engines.padding import crop, pad, padded_size
from defusion_rt.errors import UserError
from defusion_rt.samples import sample_pair

# bf16 keeps 8 mantissa bits: over ~150 layers of a random-weight network the fused image drifts ~1.2%; the
# benchmark checks the shipped weights against the 1e-2 bound on real frames (benchmarks/results/*.json).
TOL = {"fp32": 1e-3, "bf16": 2e-2, "fp16": 1e-2}


def rel_err(x, ref) -> float:
    """Relative error of the images a user sees (outputs clamped to [0, 1] as when saved)."""
    x, ref = x.clamp(0, 1), ref.clamp(0, 1)
    return float((x - ref).norm() / ref.norm())


@pytest.fixture(scope="module")
def tiny_model(tiny_model):
    """The random quarter-width network with its fused head scaled so outputs mostly fall inside [0, 1]."""
    import copy
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        model.head_fused[0].weight.mul_(0.03)
    return model


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    ir, vis = sample_pair(3, (48, 40))
    real = [torch.from_numpy(v.transpose(2, 0, 1))[None] for v in (ir, vis)]
    real = [pad(x)[0] for x in real]  # the padded shape engines see: 16 px reflect, multiple of 8
    rand = [torch.rand_like(real[0]) for _ in range(2)]
    return {"random": rand, "real": real}


@pytest.fixture(scope="module")
def reference(tiny_model, inputs):
    eager = create_engine("eager", "cpu", "fp32", model=tiny_model, channels_last=False)
    return {k: eager(*v) for k, v in inputs.items()}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFUSION_RT_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("name, precision", [
    ("eager", "fp32"), ("eager", "bf16"), ("torchscript", "fp32"), ("torchscript", "bf16"), ("onnx", "fp32"),
    # Compiling builds C++ kernels: minutes on two busy cores, hence the generous time limit.
    pytest.param("compile", "fp32", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    pytest.param("export", "fp32", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
])
def test_engine_matches_fp32_eager(tiny_model, inputs, reference, name, precision):
    engine = create_engine(name, "cpu", precision, model=tiny_model)
    for kind, (a, b) in inputs.items():
        out = engine(a, b)
        assert out.shape == reference[kind].shape and out.dtype == torch.float32
        assert rel_err(out, reference[kind]) < TOL[precision], (kind, rel_err(out, reference[kind]))


def test_saved_engines_reload_from_the_disk_cache(tiny_model, inputs, tmp_path):
    a, b = inputs["real"]
    first = create_engine("torchscript", "cpu", "fp32", model=tiny_model)
    out1 = first(a, b)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    second = create_engine("torchscript", "cpu", "fp32", model=tiny_model)
    assert second.cache_path(tuple(a.shape)) == files[0]  # same model, shape, precision, device: same file
    assert torch.equal(second(a, b), out1)
    other_shape = second.cache_path((1, 3, 88, 96))
    assert other_shape != files[0]


def test_a_truncated_cache_file_is_rebuilt_with_a_warning_and_builds_leave_no_temporary_files(
        tiny_model, inputs, tmp_path, capsys):
    a, b = inputs["real"]
    out1 = create_engine("torchscript", "cpu", "fp32", model=tiny_model)(a, b)
    (path,) = list((tmp_path / "cache").iterdir())
    path.write_bytes(path.read_bytes()[:100])  # a build killed half-way through writing, by an older version
    out2 = create_engine("torchscript", "cpu", "fp32", model=tiny_model)(a, b)
    err = capsys.readouterr().err
    assert "failed to load" in err and str(path) in err
    assert torch.equal(out1, out2) and [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]


@pytest.mark.parametrize("name, precision, device, message", [
    ("tensorrt", "fp16", "cpu", "needs a CUDA GPU"),
    ("eager", "fp16", "cpu", "fp16 runs on CUDA only"),
    ("eager", "fp64", "cpu", "unknown precision"),
    ("warp-drive", "fp32", "cpu", "unknown engine"),
    ("eager", "fp32", "cuda", "no CUDA device"),
])
def test_engines_that_cannot_run_here_say_why(tiny_model, name, precision, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match=message):
        create_engine(name, device, precision, model=tiny_model)


def test_padding_is_reflect_16_then_multiple_of_8():
    assert padded_size(480, 640) == (512, 672)
    assert padded_size(250, 333) == (288, 368)
    x = torch.rand(1, 3, 25, 31)
    p, box = pad(x)
    assert p.shape[-2:] == (64, 64) and torch.equal(crop(p, box), x)


def test_every_engine_is_registered_under_its_own_name_and_auto_picks_one():
    from defusion_rt.engines import NETWORK_ENGINES, auto_choice
    assert all(cls.name == name for name, cls in BUILT.items())
    with pytest.raises(UserError, match="choose one of: " + ", ".join(NETWORK_ENGINES)):
        create_engine("tensorrtt", "cpu")
    pick = auto_choice("cpu", "ir-vis")
    assert pick["engine"] in NETWORK_ENGINES and pick["precision"] in ("fp32", "bf16", "int8")


def test_streamed_fuser_matches_sequential_fusion_and_keeps_order(tiny_model):
    from defusion_rt.fusion import StreamedFuser
    from defusion_rt.fusion import Fuser
    fuser = Fuser(create_engine("eager", "cpu", "fp32", model=tiny_model), "ir-vis")
    rng = np.random.default_rng(0)
    frames = [(rng.random((40, 48, 3)) * 255).astype(np.uint8) for _ in range(5)]
    sf = StreamedFuser(fuser, depth=3)
    got = []
    for i, f in enumerate(frames):
        got += sf.submit([f], [frames[-1 - i]], meta=i)
    got += sf.flush()
    assert [m for _, m in got] == [0, 1, 2, 3, 4]
    for i, (out, _) in enumerate(got):
        a = torch.from_numpy(frames[i][..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        b = torch.from_numpy(frames[-1 - i][..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        ref = (fuser.fuse_tensors(a, b)[0].permute(1, 2, 0).flip(-1) * 255).round().byte().numpy()
        assert out[0].shape == (40, 48, 3) and np.abs(out[0].astype(int) - ref).max() <= 1


def test_a_short_tail_batch_is_padded_to_the_engine_shape_not_rebuilt():
    from defusion_rt.engines.classical import AverageEngine
    from defusion_rt.fusion import Fuser, StreamedFuser

    class Recording(AverageEngine):
        shapes = []

        def __call__(self, a, b):
            self.shapes.append(tuple(a.shape))
            return super().__call__(a, b)
    fuser = Fuser(Recording(torch.device("cpu")), "multi-focus")
    rng = np.random.default_rng(1)
    a = [(rng.random((24, 32, 3)) * 255).astype(np.uint8) for _ in range(6)]
    b = [(rng.random((24, 32, 3)) * 255).astype(np.uint8) for _ in range(6)]
    sf = StreamedFuser(fuser, depth=1)
    got = sf.submit(a[:4], b[:4], "full") + sf.submit(a[4:], b[4:], "tail") + sf.flush()
    assert Recording.shapes == [(4, 3, 24, 32), (4, 3, 24, 32)]  # one static shape for the compiled engines
    assert [m for _, m in got] == ["full", "tail"] and [len(f) for f, _ in got] == [4, 2]
    want = ((a[5].astype(np.float32) + b[5]) / 2).round()
    assert np.abs(got[1][0][1].astype(np.float32) - want).max() <= 1  # the tail's own frames, not the padding


class _FakeEvent:
    """A CUDA event stand-in: not done until `polls` queries have passed (a GPU still busy) or it is waited on."""

    def __init__(self, polls: int = 1000):
        self.polls = polls

    def query(self) -> bool:
        self.polls -= 1
        return self.polls < 0

    def synchronize(self) -> None:
        self.polls = -1


@pytest.mark.parametrize("depth", [1, 3])
def test_cuda_path_returns_each_result_on_the_submission_that_produced_it(depth):
    """The CUDA branch of StreamedFuser driven on the CPU with fake events: at depth 1 submission k returns frame
    k (a live run gains no frame of latency), at depth d the frame d-1 submissions back."""
    from defusion_rt.engines.classical import AverageEngine
    from defusion_rt.fusion import Fuser, StreamedFuser
    sf = StreamedFuser(Fuser(AverageEngine(torch.device("cpu")), "multi-focus"), depth=depth)
    sf.cuda = True

    def launch(slot):  # the work done at once, but reported unfinished until waited on, as a busy GPU would
        sf._compute(slot, slot.host_a, slot.host_b, slot.host_out, slot.host_ok)
        slot.copied_out = _FakeEvent()
    sf._launch = launch
    frames = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(6)]
    returned_at = {}
    for k, f in enumerate(frames):
        for out, meta in sf.submit([f], [f], meta=k):
            returned_at[meta] = k
            assert out[0][0, 0, 0] == 10 * meta  # each result is its own frame's
    for _, meta in sf.flush():
        returned_at[meta] = "flush"
    assert all(returned_at[k] == k + depth - 1 for k in range(len(frames) - depth + 1))
    assert list(returned_at) == list(range(len(frames)))


class _Overflowing(EagerEngine):
    """An 'fp16' engine whose result is NaN for bright batches, as fp16 overflow would make it."""

    def __init__(self, model):
        super().__init__(model, torch.device("cpu"), "fp32")
        self.precision = "fp16"

    def __call__(self, a, b):
        out = super().__call__(a, b)
        return out * float("nan") if a.mean() > 0.5 else out


def test_an_overflowed_fp16_batch_is_fused_again_in_fp32_when_collected():
    """The finite flag is computed with the batch and read only when its result is collected (the CUDA branch,
    driven with fake events): bright batches come back as the fp32 network's result, the others untouched."""
    from defusion_rt.fusion import Fuser, StreamedFuser
    from defusion_rt.model import create_model
    model = create_model("defusion_fast", pretrained=False).eval()
    sf = StreamedFuser(Fuser(_Overflowing(model), "ir-vis"), depth=2)
    ref = StreamedFuser(Fuser(create_engine("eager", "cpu", model=model), "ir-vis"), depth=1)
    sf.cuda = True

    def launch(slot):
        before = sf.repaired
        sf._compute(slot, slot.host_a, slot.host_b, slot.host_out, slot.host_ok)
        assert slot.checked and sf.repaired == before  # nothing read yet: the flag waits for the collection
        slot.copied_out = _FakeEvent()
    sf._launch = launch
    rng = np.random.default_rng(0)
    frames = [(rng.random((40, 48, 3)) * 100 + 155 * (k % 2)).astype(np.uint8) for k in range(4)]
    got = [out for k, f in enumerate(frames) for out, _ in sf.submit([f], [f[::-1].copy()], k)] + \
        [out for out, _ in sf.flush()]
    want = [ref.submit([f], [f[::-1].copy()])[0][0] for f in frames]
    assert sf.repaired == 2  # the two bright frames
    for g, w in zip(got, want):
        assert np.abs(g[0].astype(int) - w[0]).max() <= 1


@pytest.mark.parametrize("engine", ["eager", "torchscript", "onnx", "openvino"])
@pytest.mark.parametrize("variant", ["defusion_fast", "defusion"])
def test_grey_sources_go_into_the_network_as_one_channel_with_the_same_result(engine, variant, tmp_path,
                                                                                 monkeypatch):
    """ir-vis video sends one grey channel: engines that take it fuse it with the first convolution's weights
    summed over its input channels (FusedOnly.grey), the same result as three equal channels."""
    from defusion_rt.fusion import Fuser
    from defusion_rt.model import create_model
    if engine == "openvino":
        pytest.importorskip("openvino", reason="the openvino engine needs openvino")
    monkeypatch.setenv("DEFUSION_RT_CACHE", str(tmp_path))
    model = create_model(variant, pretrained=False, width=0.25).eval()
    eng = create_engine(engine, "cpu", model=model)
    a, b = torch.rand(1, 1, 40, 56), torch.rand(1, 1, 40, 56)
    grey = Fuser(eng, "ir-vis").fuse_tensors(a, b)
    three = Fuser(eng, "ir-vis").fuse_tensors(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1))
    channels = {s[1] for s in eng._built} if engine != "eager" else {1 if eng.grey_module else 3}
    assert eng.takes_grey and 1 in channels  # the grey form was built and used
    assert torch.allclose(grey, three, atol=1e-5)
