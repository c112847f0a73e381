"""`defusion-rt batch --ray local`: a Ray instance on this machine with two workers; a worker killed mid-pair is
retried by Ray and every output still ends complete; a second run does nothing."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_batch import archive
from test_pipeline import count_frames

pytest.importorskip("ray", reason="Ray is not installed: pip install \"defusion-rt[cluster]\"")
pytestmark = pytest.mark.slow


def _kill_first_pair_worker(stop: threading.Event, killed: list) -> None:
    """SIGKILL the first Ray worker seen fusing a pair (its process title is ray::_fuse_pair)."""
    while not stop.is_set() and not killed:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::_fuse_pair"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.02)


@pytest.mark.timeout(1300)  # two subprocesses of up to 600 s each carry their own limits
def test_ray_retries_a_killed_worker_and_a_rerun_does_nothing(tmp_path):
    a, b = archive(tmp_path, n_pairs=4, frames=150)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "defusion_rt", "batch", "--a", str(a), "--b", str(b), "--out", str(out),
           "--method", "laplacian", "--ray", "local"]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_pair_worker, args=(stop, killed), daemon=True)
    killer.start()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    finally:
        stop.set()
    assert p.returncode == 0, p.stderr[-3000:]
    assert killed, "no Ray worker was seen fusing a pair"
    report = json.loads((out / "batch_report.json").read_text())
    assert report["ray"] == "local" and [r["status"] for r in report["pairs"]] == ["done"] * 4
    for r in report["pairs"]:
        assert count_frames(r["output"]) == r["frames"] >= 150
    assert not list(out.glob("*.partial.*"))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "4 already complete, 0 to fuse" in again.stderr
    assert "Started a local Ray instance" not in again.stderr  # nothing to do: Ray is not even started
