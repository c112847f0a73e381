"""Every registered variant, parametrised over the registry: a new variant is tested by being registered."""
import pytest
import torch

from defusion_rt.engines import create_engine
from defusion_rt.errors import UserError
from defusion_rt.model import VARIANTS, create_model, default_weights, export_weights, list_models
from defusion_rt.model.fast import DeFusionFast, FastConfig
from defusion_rt.samples import sample_pair

VARIANT_NAMES = list_models()


def _pair(size=(51, 37)):
    ir, vis = sample_pair(1, size)
    return [torch.from_numpy(v.transpose(2, 0, 1).copy())[None] for v in (ir, vis)]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_builds_and_fuses_odd_sizes_to_their_own_size(name):
    torch.manual_seed(0)
    model = create_model(name)
    a, b = _pair((51, 37))
    with torch.no_grad():
        out = model(a, b)
    assert [tuple(t.shape) for t in out] == [(1, 3, 37, 51)] * 4
    assert all(torch.isfinite(t).all() and (t >= 0).all() for t in out)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_variant_loads_its_shipped_weights(name):
    tasks = [None, *VARIANTS[name].get("task_weights", {})]
    paths = {default_weights(name, t) for t in tasks}
    if not all(p.is_file() for p in paths):
        pytest.skip(f"{name} ships no weights ({', '.join(p.name for p in paths if not p.is_file())} absent)")
    a, b = _pair((64, 48))
    for task in tasks:
        model = create_model(name, pretrained=True, task=task)
        with torch.no_grad():
            fused = model(a, b).fused.clamp(0, 1)
        # Trained weights give an image of the scene, not a constant: it follows both sources.
        assert fused.std() > 0.05 and torch.corrcoef(torch.stack([fused.flatten(), (a + b).flatten()]))[0, 1] > 0.5


@pytest.mark.parametrize("name", VARIANT_NAMES)
@pytest.mark.parametrize("engine, precision, tol", [("eager", "bf16", 2e-2), ("torchscript", "fp32", 1e-3),
                                                    ("onnx", "fp32", 1e-3)])
def test_variant_survives_each_engines_correctness_check(name, engine, precision, tol, tmp_path, monkeypatch):
    monkeypatch.setenv("DEFUSION_RT_CACHE", str(tmp_path))
    torch.manual_seed(0)
    model = create_model(name, pretrained=default_weights(name).is_file())
    a, b = _pair((48, 32))
    ref = create_engine("eager", "cpu", "fp32", model=model, channels_last=False)(a, b).clamp(0, 1)
    out = create_engine(engine, "cpu", precision, model=model)(a, b).clamp(0, 1)
    assert out.shape == ref.shape
    assert float((out - ref).norm() / ref.norm()) < tol


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("engine, precision, tol", [("compile", "fp32", 1e-3), ("export", "fp32", 1e-3),
                                                    ("export", "bf16", 2e-2)])
def test_fast_variant_builds_with_the_ahead_of_time_engines(engine, precision, tol, tmp_path, monkeypatch):
    """The engines `run` picks on a CPU, built for the real-time variant (the paper network's builds take minutes
    here; tests/test_engines.py checks them on a quarter-width network of the same code)."""
    monkeypatch.setenv("DEFUSION_RT_CACHE", str(tmp_path))
    model = create_model("defusion_fast", pretrained=True, task="ir-vis")
    a, b = _pair((48, 32))
    ref = create_engine("eager", "cpu", "fp32", model=model, channels_last=False)(a, b).clamp(0, 1)
    out = create_engine(engine, "cpu", precision, model=model)(a, b).clamp(0, 1)
    assert float((out - ref).norm() / ref.norm()) < tol


def test_fast_variant_keeps_the_paper_networks_roles_at_a_fraction_of_its_cost():
    from torch.utils.flop_counter import FlopCounterMode
    fast, paper = create_model("defusion_fast"), create_model("defusion")
    a = torch.rand(1, 3, 96, 128)
    flops = {}
    for key, net in (("fast", fast), ("paper", paper)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net.fused(a, a)
        flops[key] = counter.get_total_flops()
    assert flops["paper"] / flops["fast"] > 25  # the budget: about 30x less
    e_c, e_ua, e_ub = fast.embed(a, a)
    assert e_c.shape == e_ua.shape == (1, 16, 24, 32)  # 16-channel embeddings at quarter resolution


def test_fast_variant_starts_as_the_average_and_its_unique_head_weighs_its_own_source():
    torch.manual_seed(0)
    net = DeFusionFast(FastConfig())
    a, b = _pair((64, 48))
    with torch.no_grad():
        out = net(a, b)
        assert torch.allclose(out.fused, (a + b) / 2, atol=0.05)
        with torch.no_grad():
            net.head_unique.bias.copy_(torch.tensor([1.0, 0, 0, 0, 0]))
            net.head_unique.weight.zero_()
        out = net(a, b)
    assert torch.allclose(out.unique_a, a, atol=1e-6) and torch.allclose(out.unique_b, b, atol=1e-6)


def test_weights_of_one_architecture_refuse_the_other_and_name_the_fix(tmp_path):
    path = export_weights(DeFusionFast(FastConfig(width=0.5)), tmp_path / "fast.pt")
    with pytest.raises(UserError, match="pass --model defusion_fast"):
        create_model("defusion", weights=path)
    assert create_model("defusion_fast", weights=path).cfg.width == 0.5  # the file's width wins


def test_run_defaults_to_the_real_time_variant_compiled_on_a_cpu():
    from defusion_rt.engines import auto_choice
    from defusion_rt.engines.cpu import fastest, native_bf16
    pick = auto_choice("cpu")
    assert pick["model"] == "defusion_fast" and (pick["engine"], pick["precision"]) == fastest()
    assert auto_choice("cpu", model="defusion")["engine"] == "compile"
    assert pick["precision"] != "bf16" or native_bf16()
