"""The GPU kit's CPU dry run: the same script a lent GPU machine runs first, with tiny sizes and seconds of
budget, on data the test makes. It must return weights that load, logs, a run record and benchmark results."""
import csv
import io
import json
import subprocess
import sys
import tarfile

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
           "--total-minutes", "12", "--bench-minutes", "6", "--train-minutes", "0.15", "--adapt-minutes", "0.1",
           "--val-every", "5", "--copy-every", "2", "--bench-engine", "eager:fp32", "--forms-engine", "eager:fp32",
           "--bench-size", "64x48", "--bench-budget", "0.2", "--no-probe-compile"]
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=840)
    record = json.loads((out / "run.json").read_text())
    assert set(record["phases"]) == {"bench", "probe", "cud", "adapt", "evaluate"}
    assert record["phases"]["bench"]["rc"] == dict(split_attention=0, defusion_fast=0, defusion=0, profile=0)
    probe = record["phases"]["probe"]
    assert probe["batch"] in (1, 2) and probe["loader_images_per_s"] > 0 and probe["compile"] is False
    net = create_model(model, weights=out / f"{model}.pt")  # the best CUD weights: the right format and architecture
    assert net.cfg.width == 0.25 and net.variant == model
    ev = record["phases"]["evaluate"]
    assert set(ev["adapted"]) == {"Qabf", "MI", "VIF"} and ev["shipped"] is not None
    assert (out / f"{model}_ir_vis.pt").is_file() == ev["kept"]  # adapted weights only where they beat the shipped
    with tarfile.open(out / "kit_results.tar.gz") as tar:  # every log and JSON in one archive
        names = set(tar.getnames())
        assert {"cud/log.csv", "cud/val.csv", "adapt/log.csv", "run.json", "bench/split_attention.json",
                "bench/bench_defusion.json", "bench/bench_defusion_fast.json"} <= names
        val = list(csv.DictReader(io.TextIOWrapper(tar.extractfile("cud/val.csv"))))
        forms = json.load(tar.extractfile("bench/split_attention.json"))
        (profile,) = [n for n in names if n.startswith("bench/profile_") and n.endswith(".json")]
        assert json.load(tar.extractfile(profile))["ops"]
    assert {r["set"] for r in val} == {"val_nato", "val_mffw"} and {r["method"] for r in val} == {"model", "average"}
    assert {r["form"] for r in forms["records"]} == {"textbook", "grouped", "dense"}
    assert all(r["rel_err_vs_textbook_fp32"] < 1e-5 for r in forms["records"])
    assert len(list(out.iterdir())) <= 8  # what a device call can return


def test_smoke_dry_run_writes_the_console_and_both_streams_results(tmp_path):
    """The GPU smoke check's wiring on the CPU (tests skipped: they are CUDA's): both bench runs, their JSON."""
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "smoke.py"), "--out", str(tmp_path),
                        "--device", "cpu", "--engines", "eager:fp32", "--streams", "2", "--paced", "1", "--frames",
                        "4", "--skip-tests"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (tmp_path / "smoke_console.txt").read_text()[-2000:]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["smoke_console.txt", "streams_paced.json",
                                                          "streams_unpaced.json"]
    unpaced = json.loads((tmp_path / "streams_unpaced.json").read_text())
    assert [r["n"] for r in unpaced["runs"]] == [1, 2] and unpaced["runs"][1]["pairs"][0]["fused"] == 4
    assert json.loads((tmp_path / "streams_paced.json").read_text())["paced"] is True
