"""The GPU kit's CPU dry run: the same script a lent GPU machine runs first, with tiny sizes and seconds of
budget, on data the test makes. It must return weights that load, logs, a run record and benchmark results."""
import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from defusion_rt.model import create_model
from defusion_rt.samples import sample_pair
from conftest import ROOT


def _write_pairs(folder, n, size):
    for side in ("a", "b"):
        (folder / side).mkdir(parents=True)
    for k in range(n):
        ir, vis = sample_pair(k, size)
        for side, img in (("a", ir), ("b", vis)):
            cv2.imwrite(str(folder / side / f"{k:03d}.png"), (255 * img[..., ::-1]).astype(np.uint8))


@pytest.fixture
def kit_data(tmp_path):
    data = tmp_path / "gpu_data"
    _write_pairs(data / "roadscene", 4, (80, 64))
    _write_pairs(data / "val_nato", 2, (48, 40))
    _write_pairs(data / "val_mffw", 2, (48, 40))
    (data / "small320").mkdir()
    for k in range(6):
        cv2.imwrite(str(data / "small320" / f"{k}.jpg"), (255 * sample_pair(k, (72, 64))[1]).astype(np.uint8))
    (data / "clip").mkdir()
    for i, side in enumerate(("ir", "vis")):
        w = cv2.VideoWriter(str(data / "clip" / f"{side}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
        for k in range(8):
            w.write((255 * sample_pair(k, (96, 64))[i][..., ::-1]).astype(np.uint8))
        w.release()
    return data


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("model", ["defusion_fast", "defusion"])
def test_kit_dry_run_returns_weights_logs_and_benchmarks(kit_data, tmp_path, model):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu/kit.py"), "run", "--model", model, "--out", str(out), "--work",
           str(tmp_path / "work"), "--data", str(kit_data), "--device", "cpu", "--init", "none", "--width", "0.25",
           "--amp", "off", "--crop", "32", "--batches", "1,2", "--probe-seconds", "0.5", "--workers", "0",
           "--total-minutes", "10", "--train-minutes", "0.15", "--adapt-minutes", "0.1", "--bench-minutes", "5",
           "--val-every", "5", "--copy-every", "2", "--engines", "eager", "--precisions", "fp32",
           "--sizes", "64x48", "--bench-batches", "1", "--bench-budget", "0.2", "--e2e-frames", "4"]
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=840)
    record = json.loads((out / "run.json").read_text())
    assert set(record["phases"]) == {"probe", "cud", "adapt", "bench"}
    assert record["phases"]["probe"]["batch"] in (1, 2)
    assert record["phases"]["bench"]["rc"] == 0
    for name in (f"{model}.pt", f"{model}_ir_vis.pt"):
        net = create_model(model, weights=out / name)  # loads: the right format and architecture
        assert net.cfg.width == 0.25 and net.variant == model
    assert list(csv.DictReader((out / "log.csv").open()))  # at least one logged step
    val = list(csv.DictReader((out / "val.csv").open()))
    assert {r["set"] for r in val} == {"val_nato", "val_mffw"} and {r["method"] for r in val} == {"model", "average"}
    bench = json.loads((out / "bench.json").read_text())
    fps = [r["fps"] for r in bench["records"] if "fps" in r]
    assert fps and all(f > 0 for f in fps) and bench["e2e"]["frames"] == 4 and bench["model"] == model
