import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import shared


def _write_set(root, rng, n=3):
    for d in ["a", "b", "gt"]:
        (root / d).mkdir(parents=True)
    for i in range(n):
        scene = cv2.GaussianBlur((rng.random((48, 64)) * 255).astype(np.uint8), (0, 0), 1)
        a, b = scene.copy(), scene.copy()
        a[:, 32:], b[:, :32] = 128, 128
        for d, img in zip(["a", "b", "gt"], [a, b, scene]):
            cv2.imwrite(str(root / d / f"p{i}.png"), img)
    cv2.imwrite(str(root / "a" / "odd.png"), np.zeros((10, 10), np.uint8))       # size mismatch
    cv2.imwrite(str(root / "b" / "odd.png"), np.zeros((12, 10), np.uint8))
    (root / "a" / "bad.png").write_bytes(b"not a png"); (root / "b" / "bad.png").write_bytes(b"no")
    cv2.imwrite(str(root / "a" / "alone.png"), np.zeros((10, 10), np.uint8))     # unpaired
    (root / "fusedA").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "fusedA" / f"p{i}.png"), cv2.imread(str(root / "gt" / f"p{i}.png")))


def test_evaluate_baselines_and_external_fusions(tmp_path, rng):
    _write_set(tmp_path, rng)
    cmd = [sys.executable, "-m", "defusion_rt", "evaluate", "--task", "multi-focus", "--a", str(tmp_path / "a"),
           "--b", str(tmp_path / "b"), "--gt", str(tmp_path / "gt"), "--methods", "average,laplacian",
           "--fused", f"oracle={tmp_path / 'fusedA'}", "--json", str(tmp_path / "r.json"), "--csv",
           str(tmp_path / "r.csv"), "--sheet", str(tmp_path / "sheet.png"), "--markdown", str(tmp_path / "r.md")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["methods"] == ["average", "laplacian", "oracle"] and r["pairs"] == 3
    assert {s["pair"] for s in r["skipped"]} == {"odd", "bad", "alone"}
    assert r["mean"]["oracle"]["PSNR"] > r["mean"]["laplacian"]["PSNR"] > r["mean"]["average"]["PSNR"]
    assert r["mean"]["oracle"]["SSIM_ref"] == pytest.approx(1.0)
    assert r["mean_per_source"]["average"]["SSIM"] == pytest.approx(r["mean"]["average"]["SSIM"] / 2)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("method,pair,EN") and len(lines) == 1 + 3 * 4
    assert cv2.imread(str(tmp_path / "sheet.png")).shape[0] > 100
    assert "sum" in p.stdout and "3 pair(s) skipped" in p.stdout
    md = (tmp_path / "r.md").read_text().splitlines()
    assert md[2].startswith("| method | EN") and len(md) == 4 + 3 and "**" in md[-1]  # oracle wins PSNR


def test_evaluate_unknown_method_is_one_line(tmp_path, rng):
    _write_set(tmp_path, rng, 1)
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "evaluate", "--task", "multi-focus", "--a",
                        str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--methods", "magic"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown method 'magic'" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.data
def test_baselines_on_real_tno_pairs_are_in_published_ranges():
    from defusion_rt.evaluate import run_evaluation
    tno = shared("ir_vis", "TNO")
    r = run_evaluation("ir-vis", tno / "ir", tno / "vis", ["average", "laplacian"], limit=3)
    means = r.means()
    for m in ["average", "laplacian"]:
        assert 5 < means[m]["EN"] < 8 and 0.1 < means[m]["Qabf"] < 0.8 and 0.5 < means[m]["SSIM"] < 2
    assert means["laplacian"]["Qabf"] > means["average"]["Qabf"]


def test_evaluate_defaults_to_the_tasks_default_network_and_the_baselines(tmp_path, rng):
    """The network every other command uses for the task (the real-time variant today), not the paper network."""
    from defusion_rt.evaluate import default_methods
    from defusion_rt.model import model_for
    for task in ("ir-vis", "multi-focus", "multi-exposure"):
        methods = default_methods(task)
        assert methods[0] == model_for(task) and {"average", "laplacian"} <= set(methods)
    assert "mertens" in default_methods("multi-exposure")
    _write_set(tmp_path, rng, 1)
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "evaluate", "--task", "multi-focus", "--a",
                        str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--json", str(tmp_path / "r.json")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "r.json").read_text())["methods"] == default_methods("multi-focus")


def test_flicker_is_zero_for_a_fixed_mix_and_counts_wandering_brightness():
    from defusion_rt.metrics.temporal import Flicker
    rng = np.random.default_rng(1)
    base_a, base_b = rng.random((40, 50)), rng.random((40, 50))
    steady, mixed, wandering = Flicker(), Flicker(), Flicker()
    for t in range(6):  # slowly moving sources, as a camera's scene
        a, b = np.clip(base_a + 0.01 * t, 0, 1), np.clip(base_b - 0.01 * t, 0, 1)
        steady.add(a, b, (a + b) / 2)
        mixed.add(a, b, np.maximum(a, b))
        wandering.add(a, b, (a + b) / 2 + (0.04 if t % 2 else 0.0))  # a brightness that jumps every frame
    assert steady.result()["flicker"] < 1e-3 and mixed.result()["flicker"] < 1e-3
    r = wandering.result()
    assert r["steps"] == 5 and 6 < r["flicker"] < 11  # about 10 levels of 255 per frame, minus the sources' drift


def test_evaluate_video_scores_flicker_of_every_method_on_every_clip(tmp_path):
    from defusion_rt.bench.matrix import _sample_videos
    for clip in ("c1", "c2"):
        (tmp_path / clip).mkdir()
        a, b = _sample_videos(tmp_path / clip, 6, (96, 64))
        for side, path in (("ir", a), ("vis", b)):
            (tmp_path / side).mkdir(exist_ok=True)
            (tmp_path / side / f"{clip}.mp4").write_bytes(open(path, "rb").read())
    out = tmp_path / "flicker.json"
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "evaluate", "--task", "ir-vis", "--video", "--a",
                        str(tmp_path / "ir"), "--b", str(tmp_path / "vis"), "--methods", "average,laplacian",
                        "--frames", "5", "--json", str(out), "--markdown", str(tmp_path / "f.md")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["per_pair"]["average"]) == {"c1", "c2"}
    for method in ("average", "laplacian"):
        for clip in ("c1", "c2"):
            row = result["per_pair"][method][clip]
            assert row["steps"] == 4 and row["change_a"] > 0 and row["flicker"] >= 0
    assert result["mean"]["average"]["flicker"] < 0.05  # a fixed mix: only uint8 rounding
    assert "**" in (tmp_path / "f.md").read_text()  # the lowest flicker is marked
