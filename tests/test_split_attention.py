"""The split-attention block rewritten for the hardware computes the function the weights were trained with:
the shipped paper-network weights, fixed inputs, every conv form, against the textbook form (the reference lives
in benchmarks/split_attention.py, which times the forms side by side)."""
import importlib.util

import pytest
import torch

from conftest import ROOT
from defusion_rt.model import DeFusion, DeFusionConfig, create_model
from defusion_rt.model.layers import SplitAttn
from defusion_rt.samples import sample_pair

_spec = importlib.util.spec_from_file_location("split_attention", ROOT / "benchmarks" / "split_attention.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).norm() / ref.norm())


def test_parameters_keep_their_names_and_shapes():
    block = SplitAttn(16)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == {
        "conv.weight": (32, 8, 3, 3), "fc1.weight": (32, 16, 1, 1), "fc1.bias": (32,),
        "fc2.weight": (32, 32, 1, 1), "fc2.bias": (32,)}
    assert sum(p.numel() for p in DeFusion().parameters()) == 7_874_473


@pytest.mark.parametrize("conv_form", ["grouped", "dense"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_block_matches_the_textbook_form(conv_form, channels_last):
    torch.manual_seed(1)
    block = SplitAttn(24).double()
    x = torch.rand(2, 24, 19, 23, dtype=torch.float64)  # batch 2, odd sizes: the reshapes must not mix samples
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), bench.form("textbook", "cpu"):
        ref = block(x)
    with torch.no_grad(), bench.form(conv_form, "cpu"):
        out = block(x)
    assert out.shape == ref.shape == (2, 24, 19, 23)
    assert _rel(out, ref) < 1e-12  # in float64 the two forms agree to rounding


@pytest.mark.parametrize("conv_form", ["grouped", "dense"])
def test_shipped_weights_give_the_same_fused_image(conv_form):
    """Pinned: the paper network's shipped weights and a fixed pair, fp32, within 1e-5 relative."""
    net = create_model("defusion", pretrained=True, task="ir-vis").eval()  # loads unchanged (strict)
    ir, vis = sample_pair(3, (72, 56))  # the built-in IR/visible scene: structure the weights respond to
    a, b = (torch.from_numpy(x.transpose(2, 0, 1).copy())[None] for x in (ir, vis))
    with torch.no_grad():
        with bench.form("textbook", "cpu"):
            ref = net(a, b)
        with bench.form(conv_form, "cpu"):
            out = net(a, b)
    assert ref.fused.std() > 0.02  # a real image, not a dead output
    for o, r in zip(out, ref):
        assert _rel(o, r) < 1e-5


def test_gradients_match_the_textbook_form():
    """Training runs the new form: its gradients are the textbook form's."""
    torch.manual_seed(0)
    net = DeFusion(DeFusionConfig(width=0.25, zero_init_residual=False))
    a, b = torch.rand(2, 3, 32, 40), torch.rand(2, 3, 32, 40)
    grads = {}
    for name in ("textbook", "grouped", "dense"):
        net.zero_grad()
        with bench.form(name, "cpu"):
            net(a, b, activate=False).fused.square().mean().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
    for name in ("grouped", "dense"):
        assert _rel(grads[name], grads["textbook"]) < 1e-4
