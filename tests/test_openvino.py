"""The OpenVINO engine: fp32 agrees with torch, the shipped int8 network keeps the fusion metrics of fp32 on the
built-in scene (Qabf, MI, VIF within 0.01 / 0.05 / 0.01, the bounds of issue #20), `quantize` makes an int8
network that the engine finds by the weights' digest, and weights nobody quantized fail in one line."""
import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from defusion_rt.engines import create_engine  # noqa: E402
from defusion_rt.engines.openvino import int8_path  # noqa: E402
from defusion_rt.errors import UserError  # noqa: E402
from defusion_rt.fusion import Fuser  # noqa: E402
from defusion_rt.metrics import score  # noqa: E402
from defusion_rt.model import create_model  # noqa: E402
from defusion_rt.samples import sample_pair  # noqa: E402


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFUSION_RT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def shipped():
    return create_model("defusion_fast", pretrained=True, task="ir-vis")


def fuse(model, engine, precision, pair):
    return Fuser(create_engine(engine, "cpu", precision, model=model), "ir-vis")(*pair)


def metrics(pair, fused):
    s = score(pair[0], pair[1], fused, "ir-vis")
    return np.array([s["Qabf"], s["MI"], s["VIF"]])


def test_fp32_agrees_with_torch(shipped):
    pair = sample_pair(3, (160, 120))
    ref = fuse(shipped, "eager", "fp32", pair)
    out = fuse(shipped, "openvino", "fp32", pair)
    assert out.shape == ref.shape == (120, 160, 3)
    assert np.abs(out - ref).max() < 1e-4


def test_shipped_int8_keeps_the_metrics(shipped):
    assert int8_path(shipped) is not None, "the default ir-vis weights ship with their int8 network"
    pair = sample_pair(10, (320, 240))
    fp32, int8 = fuse(shipped, "eager", "fp32", pair), fuse(shipped, "openvino", "int8", pair)
    assert 0 < np.abs(int8 - fp32).mean() < 0.02  # really quantized, and close
    d = np.abs(metrics(pair, int8) - metrics(pair, fp32))
    assert (d <= [0.01, 0.05, 0.01]).all(), f"Qabf/MI/VIF moved by {d}"


@pytest.mark.slow
def test_quantize_makes_an_int8_network_the_engine_finds(tmp_path, capsys):
    from defusion_rt.cli import main
    from defusion_rt.imageio import write_image
    torch.manual_seed(0)
    model = create_model("defusion_fast")  # weights nobody quantized
    weights = tmp_path / "mine.pt"
    torch.save(model.state_dict(), weights)
    for i in range(25):
        ir, vis = sample_pair(i * 4, (128, 96), seed=i)
        write_image(tmp_path / "a" / f"{i:03d}.png", ir)
        write_image(tmp_path / "b" / f"{i:03d}.png", vis)
    mine = create_model("defusion_fast", weights=str(weights))
    with pytest.raises(UserError, match="no int8 network for these"):
        create_engine("openvino", "cpu", "int8", model=mine)
    assert main(["quantize", "--task", "ir-vis", "--weights", str(weights), "--a", str(tmp_path / "a"),
                 "--b", str(tmp_path / "b"), "--pairs", "25"]) == 0
    assert "convolutions in int8" in capsys.readouterr().out
    found = int8_path(mine)
    assert found is not None and found.name.startswith("mine.") and found.with_suffix(".bin").is_file()
    pair = sample_pair(50, (128, 96))
    out = fuse(mine, "openvino", "int8", pair)
    assert out.shape == (96, 128, 3) and np.isfinite(out).all()


def test_int8_is_openvino_only(shipped):
    with pytest.raises(UserError, match="int8 runs on the openvino engine"):
        create_engine("export", "cpu", "int8", model=shipped)


def test_auto_falls_back_to_fp32_for_unquantized_weights(tmp_path):
    from defusion_rt.fusion.stage import FusionSettings, make_engine
    torch.manual_seed(1)
    weights = tmp_path / "fresh.pt"
    torch.save(create_model("defusion_fast").state_dict(), weights)
    engine = make_engine(FusionSettings(engine="openvino", weights=str(weights), device="cpu"))
    assert engine.name == "openvino" and engine.precision in ("fp32", "bf16")


def test_built_engine_is_cached_on_disk(shipped):
    pair = sample_pair(0, (96, 64))
    first = create_engine("openvino", "cpu", "fp32", model=shipped)
    Fuser(first, "ir-vis")(*pair)
    second = create_engine("openvino", "cpu", "fp32", model=shipped)
    Fuser(second, "ir-vis")(*pair)
    assert (first.cache_state, second.cache_state) == ("built", "loaded")


def test_int8_fuses_a_batch_like_single_pairs(shipped):
    engine = create_engine("openvino", "cpu", "int8", model=shipped)
    pairs = [sample_pair(i, (96, 64)) for i in (0, 40)]
    a = torch.stack([torch.from_numpy(p[0].transpose(2, 0, 1)) for p in pairs])
    b = torch.stack([torch.from_numpy(p[1].transpose(2, 0, 1)) for p in pairs])
    a, b = (torch.nn.functional.pad(x, (16, 16, 16, 16), mode="reflect") for x in (a, b))
    both = engine(a, b)
    one = torch.cat([engine(a[i:i + 1], b[i:i + 1]) for i in range(2)])
    assert both.shape == (2, 3, 96, 128) and torch.allclose(both, one, atol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--task", "ir-vis"], "give calibration pairs"),
    (["--task", "ir-vis", "--a", "nowhere"], "--a is given 1 time"),
    (["--task", "ir-vis", "--a", "nowhere", "--b", "nothing"], "must both be folders of frames or both video"),
    (["--task", "ir-vis", "--data", "."], "for ir-vis give real pairs with --a/--b"),
])
def test_quantize_mistakes_are_one_line(capsys, args, message):
    from defusion_rt.cli import main
    assert main(["quantize", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_requantized_network_is_not_served_from_the_old_build(tmp_path, monkeypatch, shipped):
    import shutil
    from defusion_rt.engines import openvino as ovengine
    folder = tmp_path / "int8"
    folder.mkdir()
    for f in int8_path(shipped).parent.glob(int8_path(shipped).stem + ".*"):
        shutil.copy(f, folder / f.name)
    monkeypatch.setattr(ovengine, "int8_folders", lambda: [folder])
    first = create_engine("openvino", "cpu", "int8", model=shipped)
    shape = (1, 3, 64, 96)
    path = first.cache_path(shape)
    xml = int8_path(shipped)
    xml.write_text(xml.read_text() + "\n")  # the same weights' digest, another int8 network
    assert create_engine("openvino", "cpu", "int8", model=shipped).cache_path(shape) != path


def test_a_corrupt_int8_network_is_one_line(tmp_path, monkeypatch, shipped):
    import shutil
    from defusion_rt.engines import openvino as ovengine
    folder = tmp_path / "int8"
    folder.mkdir()
    for f in int8_path(shipped).parent.glob(int8_path(shipped).stem + ".*"):
        shutil.copy(f, folder / f.name)
    monkeypatch.setattr(ovengine, "int8_folders", lambda: [folder])
    xml = int8_path(shipped)
    xml.write_text(xml.read_text()[:2000])  # truncated
    engine = create_engine("openvino", "cpu", "int8", model=shipped)
    with pytest.raises(UserError, match="cannot read the int8 network .* make it again with `defusion-rt quantize`"):
        Fuser(engine, "ir-vis")(*sample_pair(0, (64, 48)))
