import torch

from defusion_rt.model import DeFusion, create_model, export_weights, list_models
from defusion_rt.errors import UserError
import pytest


def test_parameter_count_matches_official_network():
    assert sum(p.numel() for p in DeFusion().parameters()) == 7_874_473


def test_shapes_for_a_256_pair():
    torch.manual_seed(0)
    net = DeFusion().eval()
    a, b = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        _, _, _, f3 = net.encoder(a)
        assert f3.shape == (1, 256, 32, 32)
        assert net.ensembler(torch.cat([f3, f3], 1)).shape == (1, 1024, 32, 32)
        embeddings = net.embed(a, b)
        assert all(e.shape == (1, 16, 256, 256) for e in embeddings)
        out = net(a, b)
    assert all(t.shape == (1, 3, 256, 256) for t in out)
    assert all(torch.isfinite(t).all() and (t >= 0).all() for t in out)  # ReLU heads


def test_odd_sizes_come_back_at_their_own_size(tiny_model):
    a = torch.rand(1, 3, 250, 333)
    with torch.no_grad():
        out = tiny_model(a, a.flip(-1))
    assert [tuple(t.shape[-2:]) for t in out] == [(250, 333)] * 4


def test_no_normalisation_layers_and_he_fan_out_init():
    net = DeFusion()
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)) for m in net.modules())
    w = net.ensembler[0].conv1.weight  # 1x1, C_out = 256
    assert abs(w.std().item() - (2 / 256) ** 0.5) < 0.1 * (2 / 256) ** 0.5


def test_width_multiplier_gives_lighter_variant():
    lite = create_model("defusion_lite")
    n = sum(p.numel() for p in lite.parameters())
    assert 1_000_000 < n < 7_874_473 / 3
    assert "defusion_lite" in list_models()


def test_weights_round_trip_and_errors(tmp_path, tiny_model):
    path = export_weights(tiny_model, tmp_path / "w.pt")
    loaded = create_model(weights=path)
    a = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.allclose(loaded(a, a).fused, tiny_model(a, a).fused, rtol=1e-2, atol=1e-2)  # fp16 file
    with pytest.raises(UserError, match="not found"):
        create_model(weights=tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        create_model(weights=tmp_path / "bad.pt")
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="do not fit"):
        create_model(weights=tmp_path / "other.pt")
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(UserError, match="hold no state dict"):
        create_model(weights=tmp_path / "empty.pt")


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"model": sd, "epoch": 9},
                                  lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
                                  lambda sd: {"model_state_dict": {f"_orig_mod.{k}": v for k, v in sd.items()}}])
def test_weights_saved_the_usual_ways_load(tmp_path, tiny_model, wrap):
    """torch.save(model.state_dict()), Lightning-style wrappers, DDP and torch.compile prefixes: the family and
    width are read from the tensors."""
    torch.save(wrap(tiny_model.state_dict()), tmp_path / "plain.pt")
    loaded = create_model(weights=tmp_path / "plain.pt")
    assert loaded.cfg.width == 0.25
    a = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(a, a).fused, tiny_model(a, a).fused)


def test_a_checkpoint_of_another_width_names_the_first_mismatch(tmp_path, tiny_model):
    blob = {"format": "defusion-rt-weights/1", "arch": {"family": "defusion", "width": 1.0},
            "state_dict": tiny_model.state_dict()}
    torch.save(blob, tmp_path / "w.pt")
    with pytest.raises(UserError, match=r"first: encoder.stem_conv.weight is \(4, 3, 3, 3\) in the file but "
                                        r"\(16, 3, 3, 3\) in the model"):
        create_model(weights=tmp_path / "w.pt")


def test_loading_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"state_dict": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError):
        create_model(weights=tmp_path / "evil.pt")
