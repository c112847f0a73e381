import json
import subprocess
import sys

import pytest

from defusion_rt.bench import load_results, markdown_table, update_readme


@pytest.mark.timeout(420)  # above its subprocess's own 300 s: the child's limit is the one that should speak
def test_bench_writes_records_telemetry_and_the_readme_table(tmp_path, tiny_model):
    from defusion_rt.model import export_weights
    weights = export_weights(tiny_model, tmp_path / "w.pt")
    out = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- perf-table:start -->\nold\n<!-- perf-table:end -->\ntail\n")
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "bench", "--device", "cpu", "--engines", "eager,onnx",
                        "--precisions", "fp32,bf16", "--sizes", "64x48", "--batch", "1,2", "--budget", "0.2",
                        "--weights", str(weights), "--e2e-frames", "4", "--out-dir", str(out), "--readme", str(readme)],
                       capture_output=True, text=True, timeout=300, env={"DEFUSION_RT_CACHE": str(tmp_path / "c"),
                                                                          "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr[-2000:]
    files = list(out.glob("*.json"))
    assert len(files) == 1 and (out / "fps_640x480.png").is_file()
    result = json.loads(files[0].read_text())
    timed = [r for r in result["records"] if "fps" in r]
    assert {(r["engine"], r["precision"], r["batch"]) for r in timed} >= {("eager", "fp32", 1), ("eager", "bf16", 2),
                                                                         ("onnx", "fp32", 1)}
    for r in timed:
        for key in ["engine", "precision", "device", "width", "height", "batch", "fps", "latency_ms_median"]:
            assert key in r
        assert r["fps"] > 0 and r["latency_ms_median"] > 0 and r["width"] == 64
    assert any("skipped" in r for r in result["records"])  # onnx bf16 says why it cannot run
    assert result["machine"]["cpu_cores"] >= 1 and "torch" in result["machine"]["versions"]
    assert result["e2e"]["frames"] == 4 and result["e2e"]["fps"] > 0
    assert result["e2e"]["width"] == 64 and result["e2e"]["height"] == 48  # the end-to-end run honours --sizes
    (classical,) = result["e2e_classical"]  # the pipeline's own cost: --e2e-methods average by default
    assert classical["model"] == "average" and classical["frames"] == 4 and classical["codec"]
    text = readme.read_text()
    assert "old" not in text and "| eager | fp32 | 64x48 |" in text and text.endswith("tail\n")
    assert markdown_table(load_results(out)).count("\n") == len(timed) + 3  # header, rule, rows, two end-to-end rows
    assert "end to end: decode, register, average, encode" in text


def test_bench_profile_writes_the_operator_table(tmp_path, tiny_model):
    from defusion_rt.model import export_weights
    weights = export_weights(tiny_model, tmp_path / "w.pt")
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "bench", "--device", "cpu", "--profile", "eager-nchw:fp32",
                        "--sizes", "48x32", "--weights", str(weights), "--out-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-1500:]
    (table,) = tmp_path.glob("profile_*_eager-nchw_fp32_48x32.txt")
    assert "aten::" in table.read_text() and "convolution" in table.read_text()
    rows = json.loads(table.with_suffix(".json").read_text())  # the top operators, for scripts
    assert rows["time"] == "self_cpu_time_total" and rows["input"][2:] == [64, 80]
    assert any("conv" in op["name"] for op in rows["ops"]) and 0.3 < sum(op["share"] for op in rows["ops"]) <= 1.0001


@pytest.mark.timeout(700)  # the subprocesses carry their own limits: this one must not cut them
def test_a_missing_end_to_end_source_is_named_before_any_model_runs(tmp_path):
    for e2e, says in ((str(tmp_path / "a.mp4") + "," + str(tmp_path / "b.mp4"), "source not found"),
                      ("only_one.mp4", "two sources")):
        p = subprocess.run([sys.executable, "-m", "defusion_rt", "bench", "--device", "cpu", "--sizes", "64x48",
                            "--e2e", e2e, "--out-dir", str(tmp_path / "out")], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr
        assert not list((tmp_path / "out").glob("*.json"))  # it stopped before measuring anything


def test_bench_streams_runs_n_pairs_through_one_engine_beside_the_single_pipeline(tmp_path, tiny_model):
    from defusion_rt.bench.matrix import _sample_videos
    from defusion_rt.cli import main
    from defusion_rt.model import export_weights
    weights = export_weights(tiny_model, tmp_path / "w.pt")
    a, b = _sample_videos(tmp_path, 6, (96, 64))
    assert main(["bench", "--device", "cpu", "--streams", "1,3", "--engines", "eager:fp32", "--weights", str(weights),
                 "--e2e", f"{a},{b}", "--e2e-frames", "6", "--out-dir", str(tmp_path / "out")]) == 0
    (path,) = (tmp_path / "out").glob("streams_*.json")
    result = json.loads(path.read_text())
    assert [(r["n"], r["pipeline"]) for r in result["runs"]] == [(1, "single"), (1, "multi"), (3, "multi")]
    assert (result["width"], result["height"], result["paced"]) == (96, 64, False) and "eager fp32" in result["engine"]
    three = result["runs"][2]
    assert [p["fused"] for p in three["pairs"]] == [6, 6, 6] and three["dropped_total"] == 0
    assert three["fps_total"] > 0 and all(p["latency_p95_ms"] > 0 for p in three["pairs"])
    assert main(["bench", "--streams", "2", "--engines", "eager,onnx", "--out-dir", str(tmp_path)]) == 2
