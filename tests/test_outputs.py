"""Every command checks its outputs before any work: an unwritable file or folder is one line and exit 2, with no
traceback and nothing half-done. The unwritable place is a path under a regular file, which no user (root
included, as in CI) can create."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from defusion_rt.errors import UserError
from defusion_rt.outputs import check_file, check_folder, written
from defusion_rt.samples import sample_pair


@pytest.fixture
def data(tmp_path):
    """Two folders of three IR/visible frames, a video pair folder for batch, and a photo folder for train."""
    for side, i in (("a", 0), ("b", 1)):
        (tmp_path / side).mkdir()
        (tmp_path / "videos" / side).mkdir(parents=True)
        w = cv2.VideoWriter(str(tmp_path / "videos" / side / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                            (64, 48))
        for k in range(3):
            img = (255 * sample_pair(k, (64, 48))[i][..., ::-1]).astype(np.uint8)
            cv2.imwrite(str(tmp_path / side / f"{k}.png"), img)
            w.write(img)
        w.release()
    (tmp_path / "blocked").write_text("a file, so nothing can be made under it")
    return tmp_path


def _commands(d):
    bad = d / "blocked" / "out"
    a, b = str(d / "a"), str(d / "b")
    return {
        "batch --out": ["batch", "--a", str(d / "videos/a"), "--b", str(d / "videos/b"), "--out", bad,
                        "--method", "average"],
        "batch --report": ["batch", "--a", str(d / "videos/a"), "--b", str(d / "videos/b"), "--out", d / "ok",
                           "--report", bad / "r.json", "--method", "average"],
        "evaluate --json": ["evaluate", "--task", "ir-vis", "--a", a, "--b", b, "--methods", "average",
                            "--json", bad / "r.json"],
        "evaluate --csv": ["evaluate", "--task", "ir-vis", "--a", a, "--b", b, "--methods", "average",
                           "--csv", bad / "r.csv"],
        "evaluate --sheet": ["evaluate", "--task", "ir-vis", "--a", a, "--b", b, "--methods", "average",
                             "--sheet", bad / "s.png"],
        "fuse folders": ["fuse", a, b, "-o", bad, "--method", "average"],
        "fuse images": ["fuse", d / "a/0.png", d / "b/0.png", "-o", bad / "f.png", "--method", "average"],
        "train --out": ["train", "--data", a, "--out", bad, "--iterations", "1"],
        "bench --out-dir": ["bench", "--device", "cpu", "--sizes", "64x48", "--engines", "eager", "--out-dir", bad],
        "bench --json": ["bench", "--device", "cpu", "--sizes", "64x48", "--engines", "eager", "--json",
                         bad / "b.json", "--out-dir", d / "bench"],
        "calibrate -o": ["calibrate", "--a", d / "a/0.png", "--b", d / "b/0.png", "-o", bad / "cal.yaml"],
        "run --record": ["run", "--method", "average", "--record", bad / "x.mp4"],
        "run --csv": ["run", "--method", "average", "--csv", bad / "t.csv"],
        "quantize --out-dir": ["quantize", "--task", "ir-vis", "--a", a, "--b", b, "--out-dir", bad],
    }


@pytest.mark.parametrize("name", list(_commands(__import__("pathlib").Path("."))))
def test_an_unwritable_output_is_one_line_before_any_work(data, name):
    args = _commands(data)[name]
    p = subprocess.run([sys.executable, "-m", "defusion_rt", *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write" in lines[0] and "choose a writable path" in lines[0], p.stderr
    assert "blocked/out" in lines[0] and "Traceback" not in p.stderr
    assert not any((data / "bench").glob("*.json")) and not (data / "ok" / "clip.mp4").exists()  # no work done


@pytest.mark.parametrize("flag", ["--batch", "--max-frames"])
@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_counts_are_checked_by_the_parser(flag, value):
    for cmd in (["run", flag, value], ["batch", "--batch", value]):
        p = subprocess.run([sys.executable, "-m", "defusion_rt", *cmd], capture_output=True, text=True, timeout=60)
        errors = [line for line in p.stderr.splitlines() if "error" in line]
        assert p.returncode == 2 and len(errors) == 1 and "an integer of 1 or more" in errors[0], p.stderr


def test_checks_and_mid_run_failures(tmp_path):
    assert check_folder(tmp_path / "new" / "deeper").is_dir()
    (tmp_path / "keep.txt").write_text("old")
    check_file(tmp_path / "keep.txt")
    assert (tmp_path / "keep.txt").read_text() == "old"  # an existing file is left as it was
    check_file(tmp_path / "fresh.json")
    assert not (tmp_path / "fresh.json").exists()  # a probe leaves nothing behind
    with pytest.raises(UserError, match="is a folder; give a file name"):
        check_file(tmp_path / "new")
    with pytest.raises(UserError, match=r"cannot write --json .*x.json: No space left on device; choose"):
        with written(tmp_path / "x.json", "--json"):
            raise OSError(28, "No space left on device")
