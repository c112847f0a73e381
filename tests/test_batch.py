"""`defusion-rt batch`: pairs from folders or a manifest, one complete video each, resumable, with workers."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from defusion_rt.batch import jobs_from_folders, jobs_from_manifest, run_batch
from defusion_rt.errors import UserError
from defusion_rt.pipeline import PipelineSettings
from test_pipeline import count_frames, make_folder, make_video


def archive(root: Path, n_pairs: int = 3, frames: int = 6) -> tuple[Path, Path]:
    """Two folders: videos and a frame folder per stream, named alike, plus one name found in A only."""
    a, b = root / "ir", root / "vis"
    a.mkdir(parents=True), b.mkdir(parents=True)
    for i in range(n_pairs - 1):
        make_video(a / f"clip{i}.mp4", frames + i, "ir")
        make_video(b / f"clip{i}.mp4", frames + i, "vis")
    make_folder(a / "seq", frames, "ir")
    make_folder(b / "seq", frames, "vis")
    make_video(a / "lonely.mp4", 3, "ir")
    return a, b


def average() -> PipelineSettings:
    s = PipelineSettings()
    s.fusion.method, s.render.overlay = "average", False
    return s


def test_folders_pair_by_name_and_every_output_is_complete_then_skipped(tmp_path):
    a, b = archive(tmp_path)
    jobs, unpaired = jobs_from_folders(a, b, tmp_path / "out")
    assert [Path(j.output).name for j in jobs] == ["clip0.mp4", "clip1.mp4", "seq.mp4"] and unpaired == ["lonely"]
    first = run_batch(jobs, average(), tmp_path / "out" / "report.json")
    frames = {Path(r["output"]).name: r["frames"] for r in first["pairs"]}
    assert frames == {"clip0.mp4": 6, "clip1.mp4": 7, "seq.mp4": 6}
    for name, n in frames.items():
        assert count_frames(tmp_path / "out" / name) == n
    assert not list((tmp_path / "out").glob("*.partial.*"))
    again = run_batch(jobs, average(), tmp_path / "out" / "report.json")
    assert {r["status"] for r in again["pairs"]} == {"complete before"}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["pairs"] == again["pairs"]


def test_a_partial_output_is_redone_and_a_bad_pair_is_reported_not_fatal(tmp_path):
    a, b = archive(tmp_path)
    (a / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 300)  # a damaged recording
    make_video(b / "broken.mp4", 4, "vis")
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip0.partial.mp4").write_bytes(b"half a file")  # left by a killed run
    jobs, _ = jobs_from_folders(a, b, out)
    result = run_batch(jobs, average(), out / "report.json")
    rows = {Path(r["output"]).name: r for r in result["pairs"]}
    assert rows["broken.mp4"]["status"] == "failed" and "corrupt" in rows["broken.mp4"]["error"]
    assert not (out / "broken.mp4").exists() and not (out / "broken.partial.mp4").exists()
    assert rows["clip0.mp4"]["status"] == "done" and count_frames(out / "clip0.mp4") == 6
    assert not (out / "clip0.partial.mp4").exists()


def test_a_manifest_gives_outputs_calibrations_and_per_pair_settings(tmp_path):
    a, b = archive(tmp_path)
    from defusion_rt.register import Registration
    Registration(np.eye(3), (160, 120), (160, 120)).save(tmp_path / "cal.yaml")
    (tmp_path / "m.csv").write_text("a,b,output,calibration,fusion.method\n"
                                    "ir/clip0.mp4,vis/clip0.mp4,first.mp4,cal.yaml,max\n"
                                    "ir/seq,vis/seq,,,\n")
    jobs = jobs_from_manifest(tmp_path / "m.csv", tmp_path / "out")
    assert [Path(j.output).name for j in jobs] == ["first.mp4", "seq.mp4"]
    assert jobs[0].options == {"register": {"method": str(tmp_path / "cal.yaml")}, "fusion": {"method": "max"}}
    result = run_batch(jobs, average(), tmp_path / "out" / "r.json")
    assert [r["status"] for r in result["pairs"]] == ["done", "done"]
    # the per-pair method took effect: max of IR and visible is never darker than their average
    cap_max, cap_avg = cv2.VideoCapture(str(tmp_path / "out" / "first.mp4")), cv2.VideoCapture(str(tmp_path / "out" / "seq.mp4"))
    assert cap_max.read()[1].mean() > cap_avg.read()[1].mean()


@pytest.mark.parametrize("text, message", [
    ("a,b\nir/x.mp4,\n", "row 2: needs both a and b"),
    ("a,b,colour\nir/x.mp4,vis/x.mp4,1\n", "unknown column 'colour'"),
    ("a,b,fusion.metod\nx,y,max\n", "did you mean 'fusion.method'"),
])
def test_manifest_mistakes_are_one_line(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        jobs = jobs_from_manifest(tmp_path / "m.csv", None)
        from defusion_rt.batch.jobs import settings_for
        settings_for(jobs[0], PipelineSettings())


@pytest.mark.timeout(700)  # the subprocesses carry their own limits: this one must not cut them
def test_the_command_with_two_workers_and_a_failing_pair(tmp_path):
    a, b = archive(tmp_path, n_pairs=4)
    (a / "broken.mp4").write_bytes(b"not a video")
    make_video(b / "broken.mp4", 4, "vis")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "defusion_rt", "batch", "--a", str(a), "--b", str(b), "--out", str(out),
           "--method", "average", "--workers", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "1 of 5 pair(s) failed" in p.stderr and "Traceback" not in p.stderr, p.stderr
    report = json.loads((out / "batch_report.json").read_text())
    done = [r for r in report["pairs"] if r["status"] == "done"]
    assert len(done) == 4 and all(count_frames(r["output"]) == r["frames"] for r in done)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "4 already complete, 1 to fuse" in again.stderr and again.returncode == 2


@pytest.mark.timeout(700)  # the subprocesses carry their own limits: this one must not cut them
def test_ctrl_c_keeps_what_is_complete_and_a_rerun_finishes_the_rest(tmp_path):
    import signal
    import time
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i in range(6):  # pairs long enough (laplacian, 320x240) for the signal to land mid-run
        make_video(a / f"c{i}.mp4", 120, "ir", size=(320, 240))
        make_video(b / f"c{i}.mp4", 120, "vis", size=(320, 240))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "defusion_rt", "batch", "--a", str(a), "--b", str(b), "--out", str(out),
           "--method", "laplacian"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "c0.mp4").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err[-2000:]
    report = json.loads((out / "batch_report.json").read_text())
    assert report["interrupted"] and any(r["status"] == "done" for r in report["pairs"])
    for r in report["pairs"]:
        if r["status"] == "done":
            assert count_frames(r["output"]) == 120  # what finished is whole
    assert len(list(out.glob("c*.mp4"))) - len(list(out.glob("*.partial.mp4"))) < 6
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(count_frames(out / f"c{i}.mp4") == 120 for i in range(6)) and not list(out.glob("*.partial.*"))


def test_an_unreachable_ray_address_is_one_line_at_once():
    from defusion_rt.batch.cluster import _check_reachable
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there
    with pytest.raises(UserError, match=f"cannot reach a Ray cluster at 127.0.0.1:{port}"):
        _check_reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(UserError, match="--ray needs local, auto, HOST:PORT"):
        _check_reachable("somewhere")
