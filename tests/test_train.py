import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from defusion_rt.config import build, Settings
from defusion_rt.errors import UserError
from defusion_rt.train import train
from conftest import ROOT

TINY = {"model": {"width": 0.25}, "train": {"crop": 32, "batch": 2, "iterations": 4, "workers": 0, "amp": "off",
                                           "checkpoint_every": 2, "log_every": 1, "schedule_scale": 0.001}}


def tiny(**train_overrides) -> Settings:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["train"].update(train_overrides)
    return build(Settings, data)


def test_train_writes_checkpoint_log_weights_and_plot(image_folder, tmp_path):
    out = train(str(image_folder), tiny(), tmp_path / "run")
    for name in ["checkpoint.pt", "model.pt", "log.csv", "loss.png", "config.yaml"]:
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["total"]) > 0 for r in rows)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["iteration"] == 4 and set(ckpt) >= {"state_dict", "optimizer", "scheduler", "settings"}


def test_corrupt_images_are_skipped_and_counted(image_folder, tmp_path):
    out = train(str(image_folder), tiny(iterations=12, batch=4), tmp_path / "run")
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert int(rows[-1]["skipped"]) >= 1  # broken.jpg is 1 of 7 files; 48 samples reach it


def test_resume_continues_exactly(image_folder, tmp_path):
    straight = train(str(image_folder), tiny(), tmp_path / "a")
    half = train(str(image_folder), tiny(), tmp_path / "b", stop_after=1)  # off the checkpoint grid
    assert torch.load(half / "checkpoint.pt", weights_only=True)["iteration"] == 1
    with (half / "log.csv").open("a") as fh:  # a row written after the checkpoint, then a crash
        fh.write("2,0.001,1,1,1,1,0,0,0,1,0\n")
    train(str(image_folder), tiny(), half, resume=True)
    assert [int(r["iteration"]) for r in csv.DictReader((half / "log.csv").open())] == [1, 2, 3, 4]
    sa = torch.load(straight / "checkpoint.pt", weights_only=True)["state_dict"]
    sb = torch.load(half / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_dead_relu_head_still_gets_a_gradient(image_folder):
    from defusion_rt.train.data import CUDDataset, batch_targets
    from defusion_rt.train import LossSchedule, cud_loss
    from defusion_rt.model import create_model
    s = tiny()
    model = create_model(width=0.25)
    with torch.no_grad():
        model.head_fused[0].bias.fill_(-1e4)  # the fused head outputs 0 everywhere after its ReLU
    batch = torch.utils.data.default_collate([CUDDataset(str(image_folder), s)[i] for i in range(2)])
    out = model(batch["view_a"], batch["view_b"], activate=False)
    cud_loss(out, batch_targets(batch), batch["clean"], 10**6, LossSchedule(s.loss)).get("total").backward()
    assert model.head_fused[0].weight.grad.abs().sum() > 0


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        train(str(tmp_path / "empty"), tiny(), tmp_path / "run")
    with pytest.raises(UserError, match="folder not found"):
        train(str(tmp_path / "nope"), tiny(), tmp_path / "run")
    with pytest.raises(UserError, match="nothing to resume"):
        train(str(tmp_path / "empty"), tiny(), tmp_path / "fresh", resume=True)


def _cli(*args, cwd=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "defusion_rt", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigterm_saves_a_checkpoint_and_resume_finishes(image_folder, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(yaml.safe_load(yaml.safe_dump(TINY)) | {"train": {**TINY["train"], "iterations": 100000,
                                                                                 "checkpoint_every": 100000}}))
    run = tmp_path / "run"
    proc = _cli("train", "--data", str(image_folder), "--config", str(cfg), "--out", str(run))
    deadline = time.time() + 60
    while time.time() < deadline and not ((run / "log.csv").exists() and len((run / "log.csv").read_text().splitlines()) > 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stopped_at = torch.load(run / "checkpoint.pt", weights_only=True)["iteration"]
    assert stopped_at >= 3
    done = _cli("train", "--data", str(image_folder), "--out", str(run), "--resume", "--iterations", str(stopped_at + 2))
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == stopped_at + 2


def test_cli_errors_are_one_line_and_leave_no_run_folder(tmp_path):
    p = _cli("train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "run"))
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "folder not found" in err and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_replicas_identical(image_folder, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29517", "-m", "defusion_rt", "train", "--data", str(image_folder), "--config", str(cfg),
                           "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["replicas_in_sync"] is True and ckpt["iteration"] == 4


def _pairs(tmp_path, n=3):
    import cv2
    from defusion_rt.samples import sample_pair
    for side in ("ir", "vis"):
        (tmp_path / side).mkdir()
    for k in range(n):
        ir, vis = sample_pair(k, (72, 56))
        cv2.imwrite(str(tmp_path / "ir" / f"{k}.png"), (255 * ir).astype("uint8"))
        cv2.imwrite(str(tmp_path / "vis" / f"{k}.png"), (255 * vis[..., ::-1]).astype("uint8"))
    return tmp_path / "ir", tmp_path / "vis"


def test_minutes_budget_places_the_run_and_its_milestones(image_folder, tmp_path, monkeypatch):
    import defusion_rt.train.loop as loop

    class Clock:  # each reading advances a quarter second: the plan no longer depends on the machine's speed
        t = 0.0

        def perf_counter(self):
            self.t += 0.25
            return self.t
    monkeypatch.setattr(loop, "time", Clock())
    monkeypatch.setattr(loop, "PLAN_AFTER", 2)  # estimate after two steps, not twenty
    out = train(str(image_folder), tiny(iterations=10 ** 6, log_every=1000), tmp_path / "run", minutes=0.03)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    tr = saved["settings"]["train"]
    assert 2 <= saved["iteration"] <= tr["iterations"] < 10 ** 6  # the plan replaced the configured length
    cfg = saved["settings"]["loss"]
    assert tr["schedule_scale"] == pytest.approx(tr["recon_full_at"] * tr["iterations"] /
                                                 (cfg["recon_offset"] + cfg["recon_ramp"]))
    assert list(csv.DictReader((out / "log.csv").open()))[-1]["iteration"] == str(saved["iteration"])


def test_init_starts_from_a_weight_file(image_folder, tmp_path):
    from defusion_rt.model import create_model, export_weights
    start = create_model(width=0.25)
    with torch.no_grad():
        start.head_fused[0].bias.fill_(0.125)
    init = export_weights(start, tmp_path / "start.pt")
    out = train(str(image_folder), tiny(lr=0.0, warmup=0), tmp_path / "run", init=init, stop_after=1)
    trained = create_model(weights=out / "model.pt")
    assert torch.equal(trained.head_fused[0].bias, torch.full_like(trained.head_fused[0].bias, 0.125))
    with pytest.raises(UserError, match="drop it when you --resume"):
        train(str(image_folder), None, out, resume=True, init=init)


def test_resume_with_another_config_names_the_keys(image_folder, tmp_path):
    out = train(str(image_folder), tiny(), tmp_path / "run", stop_after=1)
    with pytest.raises(UserError, match="train.batch"):
        train(str(image_folder), tiny(batch=3), out, resume=True)


def test_several_data_folders_are_read(image_folder, tmp_path):
    from defusion_rt.train.data import CUDDataset
    other = tmp_path / "more"
    other.mkdir()
    (other / "x.png").write_bytes((image_folder / "c0.png").read_bytes())
    assert len(CUDDataset([str(image_folder), str(other)], tiny()).files) == len(CUDDataset(str(image_folder), tiny()).files) + 1


def test_adaptation_trains_on_pairs_and_logs_its_terms_and_validation(tmp_path):
    from defusion_rt.train.validate import load_set
    ir, vis = _pairs(tmp_path)
    val = [load_set("ir-vis", ir, vis, 2)]
    out = train(None, tiny(iterations=3), tmp_path / "run", adapt=dict(task="ir-vis", a=[str(ir)], b=[str(vis)]),
                validation=val)
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert all(float(r["intensity"]) > 0 and float(r["gradient"]) > 0 for r in rows)
    val_rows = list(csv.DictReader((out / "val.csv").open()))
    assert {(r["iteration"], r["method"]) for r in val_rows} == {("0", "model"), ("0", "average"), ("3", "model"),
                                                                 ("3", "average")}
    assert all(0 <= float(r["Qabf"]) <= 1 and float(r["MI"]) > 0 for r in val_rows)
    assert (out / "val.png").is_file() and (out / "loss.png").is_file()
    # best.pt holds the weights of the best validation score so far, not just the last
    q = {int(r["iteration"]): float(r["Qabf"]) for r in val_rows if r["method"] == "model"}
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)["meta"]
    assert best["iteration"] == max(q, key=q.get) and best["val_score"] == pytest.approx(max(q.values()))
    with pytest.raises(UserError, match="one --b per --a"):
        train(None, tiny(), tmp_path / "x", adapt=dict(task="ir-vis", a=[str(ir), str(ir)], b=[str(vis)]))
    with pytest.raises(UserError, match="unknown task 'bogus'"):
        train(None, tiny(), tmp_path / "y", adapt=dict(task="bogus", a=[str(ir)], b=[str(vis)]))
    with pytest.raises(UserError, match="give --data DIR"):
        train(None, tiny(), tmp_path / "z", adapt=dict(task="multi-focus", a=[str(ir)], b=[str(vis)]))


def test_the_contrast_target_takes_detail_from_under_a_brighter_flat_source(tmp_path):
    from defusion_rt.train.adapt import contrast_mix
    torch.manual_seed(0)
    warm_flat = 0.6 + 0.01 * torch.randn(1, 1, 32, 32)  # an IR background: brighter, no structure
    texture = 0.4 * torch.rand(1, 1, 32, 32)            # the visible camera's detail
    mixed = contrast_mix(warm_flat, texture)
    assert (mixed - texture).abs().mean() < 0.01 and (mixed - torch.maximum(warm_flat, texture)).abs().mean() > 0.3
    ir, vis = _pairs(tmp_path)
    s = tiny(iterations=2)
    s.adapt.contrast = 0.5
    out = train(None, s, tmp_path / "run", adapt=dict(task="ir-vis", a=[str(ir)], b=[str(vis)]))
    assert all(float(r["contrast"]) > 0 for r in csv.DictReader((out / "log.csv").open()))


def test_multi_focus_pairs_are_complementary_defocus_of_the_photograph(image_folder, monkeypatch):
    from defusion_rt.train.synthetic import SyntheticPairDataset, disk_blur
    ds = SyntheticPairDataset(str(image_folder), tiny(), "multi-focus")
    x = ds[2]
    assert all(torch.equal(x[k], ds[2][k]) for k in ("target", "a", "b"))  # a function of the sample number
    # A fine checkerboard as the photograph: defocus flattens it, so "in focus" is easy to see.
    board = np.indices((64, 64)).sum(0) % 2
    monkeypatch.setattr(SyntheticPairDataset, "photo", lambda self, g, rng: (np.repeat(board[..., None], 3, 2).astype(np.float32), 0))
    x = ds[5]
    in_a = (x["a"] - x["target"]).abs().amax(0) < 0.05  # where a is in focus ...
    in_b = (x["b"] - x["target"]).abs().amax(0) < 0.05
    assert in_a.float().mean() > 0.1 and in_b.float().mean() > 0.1
    assert (in_a & in_b).float().mean() < 0.02  # ... b is not: complementary regions
    flat = np.full((9, 9, 3), 0.5, np.float32)
    assert np.allclose(disk_blur(flat, 2.5), 0.5, atol=1e-6)  # a normalised kernel keeps brightness


@pytest.mark.parametrize("task", ["multi-focus", "multi-exposure"])
def test_synthetic_pair_adaptation_trains_from_photographs(image_folder, tmp_path, task):
    out = train([str(image_folder)], tiny(iterations=2), tmp_path / "run", adapt=dict(task=task))
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2] and all(float(r["l1"]) > 0 for r in rows)


def test_multi_exposure_validation_keeps_the_best_mef_ssim(image_folder, tmp_path):
    """Multi-exposure is judged by MEF-SSIM: validation logs it and best.pt follows it, not Qabf."""
    from defusion_rt.train.validate import load_set
    a, b = _pairs(tmp_path)
    out = train([str(image_folder)], tiny(iterations=2), tmp_path / "run", adapt=dict(task="multi-exposure"),
                validation=[load_set("multi-exposure", a, b, 2)])
    rows = [r for r in csv.DictReader((out / "val.csv").open()) if r["method"] == "model"]
    scores = {int(r["iteration"]): float(r["MEF-SSIM"]) for r in rows}
    assert len(scores) == 2 and all(0 < v <= 1 for v in scores.values())
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)["meta"]
    assert best["val_score"] == pytest.approx(max(scores.values()))


def test_exposure_pairs_keep_highlights_in_one_source_and_shadows_in_the_other():
    from defusion_rt.train.synthetic import exposure_pair
    ramp = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 3, 2).repeat(8, 0)
    under, over = exposure_pair(ramp, np.random.default_rng(0))
    assert under.max() < 0.95 and (under[:, -8:] > under[:, -16:-8].mean()).all()  # highlights not clipped
    assert over.min() == 0 and over[:, 4:12].mean() > ramp[:, 4:12].mean() + 0.05  # shadows lifted ...
    assert (over[:, -16:] == 1).all()  # ... at the cost of clipped highlights
    assert np.allclose(under * 255, np.round(under * 255))  # 8-bit levels


def test_hdr_exposure_pairs_light_the_scene_unevenly_so_neither_shot_holds_it_all(image_folder):
    from defusion_rt.train.synthetic import SyntheticPairDataset, exposure_pair
    grey = np.full((64, 64, 3), 0.5, np.float32)
    plain = exposure_pair(grey, np.random.default_rng(0))
    assert all(np.ptp(x) == 0 for x in plain)  # the photograph's own light: an even grey stays even
    under, over = exposure_pair(grey, np.random.default_rng(0), hdr=8.0, stops=(2.0, 2.0))
    assert np.ptp(under) > 0.3  # the light field: an even grey is now lit unevenly
    assert (over >= 1).mean() > 0.05 and (under < 0.1).mean() > 0.05  # highlights clipped, shadows crushed
    assert np.allclose(under * 255, np.round(under * 255))  # 8-bit levels, noise included
    s = tiny()
    s.adapt.stops = [3, 1]
    with pytest.raises(UserError, match="'adapt.stops' must be two numbers"):
        SyntheticPairDataset(str(image_folder), s, "multi-exposure")


def test_adaptation_can_distill_another_networks_fused_image(tmp_path, tiny_model):
    from defusion_rt.model import export_weights
    ir, vis = _pairs(tmp_path)
    settings = tiny(iterations=2)
    settings.adapt.teacher = str(export_weights(tiny_model, tmp_path / "teacher.pt"))
    out = train(None, settings, tmp_path / "run", adapt=dict(task="ir-vis", a=[str(ir)], b=[str(vis)]))
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 2 and all(float(r["distill"]) > 0 for r in rows)
    assert all(abs(float(r["total"]) - sum(float(r[k]) for k in ("intensity", "gradient", "distill"))) < 1e-4
               for r in rows)


def test_a_decision_map_head_trains_from_affine_weights_and_its_file_rebuilds_it(image_folder, tmp_path):
    """model.decision_map: the fast variant's fused head becomes w (fused = w A + (1 - w) B), every other weight
    kept from --init; the written file records it, and loading it builds the same head."""
    from defusion_rt.model import create_model, export_weights
    from defusion_rt.model.fast import DeFusionFast, FastConfig
    torch.manual_seed(0)
    init = export_weights(DeFusionFast(FastConfig(width=0.25)), tmp_path / "affine.pt")
    s = tiny(iterations=2)
    s.model.name, s.model.decision_map = "defusion_fast", True
    out = train([str(image_folder)], s, tmp_path / "run", init=init, adapt=dict(task="multi-focus"))
    model = create_model("defusion_fast", weights=out / "model.pt")
    assert model.cfg.decision_map and model.head_fused.c2.out_channels == 1 and model.cfg.width == 0.25
    a, b = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        f = model.fused(a, b)
        same = model.fused(a, a)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    assert f.shape == a.shape and bool(((f >= lo - 1e-5) & (f <= hi + 1e-5)).all())  # a convex mix, per pixel
    assert torch.allclose(same, a, atol=1e-6)  # identical sources: no difference to read, w = 0.5, F = A
    blob = torch.load(out / "model.pt", weights_only=True)
    blob["arch"]["difference"] = True  # a hand-edited file: both heads
    torch.save(blob, tmp_path / "both.pt")
    with pytest.raises(UserError, match="record a decision map with"):
        create_model("defusion_fast", weights=tmp_path / "both.pt")
    s.model.decision_map = s.model.difference = True
    with pytest.raises(UserError, match="excludes model.difference"):
        train([str(image_folder)], s, tmp_path / "run3", init=init, adapt=dict(task="multi-focus"))
    s.model.name, s.model.difference = "defusion", False
    with pytest.raises(UserError, match="defusion_fast options"):
        train([str(image_folder)], s, tmp_path / "run2", adapt=dict(task="multi-focus"))


def test_a_difference_term_starts_as_the_affine_head_it_extends_and_trains(image_folder, tmp_path):
    """model.difference: the loaded affine weights are kept, d (A - B) is added at d = 0, so the first fused image
    is the --init network's own; training moves d, and the file rebuilds the head."""
    from defusion_rt.model import create_model, export_weights
    from defusion_rt.model.fast import DeFusionFast, FastConfig
    torch.manual_seed(0)
    affine = DeFusionFast(FastConfig(width=0.25)).eval()
    init = export_weights(affine, tmp_path / "affine.pt")
    start = create_model("defusion_fast", weights=init).with_fused_head(False, True).eval()
    a, b = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(start.fused(a, b), create_model("defusion_fast", weights=init).fused(a, b))
    s = tiny(iterations=2)
    s.model.name, s.model.difference = "defusion_fast", True
    out = train([str(image_folder)], s, tmp_path / "run", init=init, adapt=dict(task="multi-exposure"))
    model = create_model("defusion_fast", weights=out / "model.pt")
    assert model.cfg.difference and not model.cfg.decision_map
    assert model.head_difference.c2.weight.abs().sum() > 0  # d left zero


def test_a_detail_term_starts_at_zero_adds_fine_detail_only_and_trains(image_folder, tmp_path):
    """model.detail: ka h(a) + kb h(b) joins the affine head at zero (the --init network's own image), h keeps only
    what is finer than 4x4 blocks (a smooth ramp adds nothing), and training moves ka, kb."""
    from defusion_rt.model import create_model, export_weights
    from defusion_rt.model.fast import DeFusionFast, FastConfig, _fine
    torch.manual_seed(0)
    init = export_weights(DeFusionFast(FastConfig(width=0.25, difference=True)).eval(), tmp_path / "affine.pt")
    start = create_model("defusion_fast", weights=init).with_fused_head(False, True, detail=True).eval()
    assert start.cfg.difference and start.head_difference is not None  # the term it had is kept
    a, b = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(start.fused(a, b), create_model("defusion_fast", weights=init).fused(a, b))
    ramp = torch.linspace(0, 1, 56).expand(1, 3, 40, 56)  # smooth shading: the coefficient maps' job, not detail
    assert _fine(ramp)[..., 4:-4].abs().max() < 1e-5 and _fine(a).abs().mean() > 0.1
    s = tiny(iterations=2)
    s.model.name, s.model.detail = "defusion_fast", True
    out = train([str(image_folder)], s, tmp_path / "run", init=init, adapt=dict(task="multi-exposure"))
    model = create_model("defusion_fast", weights=out / "model.pt")
    assert model.cfg.detail and model.cfg.difference and model.head_detail.weight.abs().sum() > 0


def test_the_detail_pick_takes_each_region_s_fine_detail_from_the_source_that_has_it_and_trains(image_folder,
                                                                                               tmp_path):
    """model.pick: the fused image's finest two pyramid levels come from the source with the larger local contrast
    (at the start, the Laplacian pyramid's rule), swapping the sources picks the same, and training moves the
    learned bias and gains."""
    from defusion_rt.model import create_model, export_weights
    from defusion_rt.model.fast import DeFusionFast, FastConfig
    from defusion_rt.model.pyramid import blur_kernel, laplacian_pyramid
    torch.manual_seed(0)
    init = export_weights(DeFusionFast(FastConfig(width=0.25)).eval(), tmp_path / "affine.pt")
    net = create_model("defusion_fast", weights=init).with_fused_head(False, False, pick=True).eval()
    texture = 0.5 + 0.2 * torch.sign(torch.randn(1, 1, 48, 64)).expand(1, 3, 48, 64)
    flat = torch.full_like(texture, 0.5)
    a = torch.cat([texture[..., :32], flat[..., 32:]], -1)  # A: texture on the left, B: on the right
    b = torch.cat([flat[..., :32], texture[..., 32:]], -1)
    k = blur_kernel()
    fine = lambda x: laplacian_pyramid(x, 1, k)[0]  # noqa: E731
    with torch.no_grad():
        f, swapped = net.fused(a, b), net.fused(b, a)
        plain = create_model("defusion_fast", weights=init).fused(a, b)
    for x in (a, b):  # each side's finest detail is the textured source's, which the plain mix halves
        side = slice(4, 28) if x is a else slice(36, 60)
        assert torch.allclose(fine(f)[..., 4:-4, side], fine(x)[..., 4:-4, side], atol=0.02)
        assert (fine(plain)[..., 4:-4, side].abs().mean() < 0.8 * fine(x)[..., 4:-4, side].abs().mean())
    assert torch.allclose(f, swapped, atol=0.05)  # the base mix is near swap-invariant, the pick exactly
    s = tiny(iterations=2)
    s.model.name, s.model.pick = "defusion_fast", True
    out = train([str(image_folder)], s, tmp_path / "run", init=init, adapt=dict(task="multi-exposure"))
    model = create_model("defusion_fast", weights=out / "model.pt")
    assert model.cfg.pick and model.head_pick.bias.c2.weight.abs().sum() > 0


def test_stability_scores_a_noise_following_fusion_and_not_a_fixed_mix(tmp_path):
    """The flicker loss between a pair and its next frame (next_frame: noise and gain only) is 0 for a fixed mix
    and for the maximum, and positive for a fusion whose choice of source follows the noise."""
    from defusion_rt.train.adapt import flicker_loss, next_frame
    rng = np.random.default_rng(0)
    a0, b0 = np.full((32, 32), 0.7, np.float32), np.full((32, 32), 0.2, np.float32)  # flat: noise decides
    a1, b1 = next_frame(a0, rng), next_frame(b0, rng)
    assert 0 < np.abs(a1 - a0).max() < 0.1
    t = lambda x: torch.from_numpy(np.asarray(x, np.float32))[None, None]  # noqa: E731
    a, b = (t(a0), t(a1)), (t(b0), t(b1))
    mix = tuple(0.3 * x + 0.7 * y for x, y in zip(a, b))
    assert flicker_loss(a, b, mix) < 1e-7 and flicker_loss(a, b, tuple(map(torch.maximum, a, b))) < 1e-7
    noise_a = rng.random((32, 32)) < 0.5  # a choice that flips with noise: a in some pixels, then in others
    chosen = (t(np.where(noise_a, a0, b0)), t(np.where(~noise_a, a1, b1)))
    assert flicker_loss(a, b, chosen) > 0.1
    ir, vis = _pairs(tmp_path)
    s = tiny(iterations=2)
    s.adapt.stability, s.adapt.contrast, s.adapt.contrast_floor = 10.0, 0.5, 0.02
    out = train(None, s, tmp_path / "run", adapt=dict(task="ir-vis", a=[str(ir)], b=[str(vis)]))
    assert all(float(r["stability"]) >= 0 for r in csv.DictReader((out / "log.csv").open()))


def test_the_mef_ssim_objective_is_the_metric_evaluate_reports():
    import cv2
    from defusion_rt.metrics import mef_ssim as metric
    from defusion_rt.train.synthetic import mef_ssim
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.random((48, 64)), (0, 0), 2)
    a, b = np.clip(scene * 0.5 * 255, 0, 255), np.clip(scene * 1.8 * 255, 0, 255)  # under and over
    t = lambda x: torch.tensor(x, dtype=torch.float64)[None, None]  # noqa: E731
    for f in (0.6 * a + 0.4 * b + rng.normal(0, 3, a.shape), a, (a + b) / 2):
        assert abs(mef_ssim(t(a), t(b), t(f)).item() - metric([a, b], f)) < 1e-6
    f = t(0.5 * a + 0.5 * b).requires_grad_()
    (1 - mef_ssim(t(a), t(b), f)).sum().backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0  # it trains
    # float32 inputs (a training batch) score as the metric does: a clipped sky over a near-flat bright shot, where
    # float32 local variances were off by 4e-5 here and by up to 0.8 on training batches
    sky = np.full((48, 48), 255.0)
    sky[:, :8] = rng.integers(100, 255, (48, 8))
    shot = 220.0 + rng.integers(0, 2, (48, 48))
    f = 0.5 * sky + 0.5 * shot + rng.normal(0, 2, sky.shape)
    t32 = lambda x: torch.tensor(x, dtype=torch.float32)[None, None]  # noqa: E731
    value = mef_ssim(t32(sky), t32(shot), t32(f))
    assert value.dtype == torch.float32 and abs(value.item() - metric([sky, shot], f)) < 2e-6
