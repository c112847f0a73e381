import subprocess
import sys

import cv2
import numpy as np
import pytest

from defusion_rt.model import export_weights
from defusion_rt.samples import sample_pair
from conftest import shared


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_model):
    return export_weights(tiny_model, tmp_path_factory.mktemp("w") / "tiny.pt")


@pytest.fixture
def pair(tmp_path):
    ir, vis = sample_pair(0, (96, 72))
    cv2.imwrite(str(tmp_path / "ir.png"), (ir[..., 0] * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "vis.png"), (vis[..., ::-1] * 255).astype(np.uint8))
    return tmp_path / "ir.png", tmp_path / "vis.png"


def fuse(*args):
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "fuse", *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_fuse_pair_grey_and_colour(pair, weights, tmp_path):
    rc, _, err = fuse(*pair, "-o", tmp_path / "f.png", "--weights", weights)
    assert rc == 0, err
    out = cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (72, 96)  # ir-vis default convention: grey output
    rc, _, err = fuse(*pair, "-o", tmp_path / "c.png", "--weights", weights, "--colour", "--decomposition")
    assert rc == 0, err
    col = cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED)
    assert col.shape == (72, 96, 3) and np.abs(col[..., 0].astype(int) - col[..., 2]).max() > 5
    for part in ["common", "unique_a", "unique_b"]:
        assert (tmp_path / f"c_{part}.png").is_file()


def test_the_decomposition_of_the_shipped_ir_vis_network_comes_from_its_cud_weights(pair, tmp_path):
    """The shipped IR-visible weights train the fused head only; the decomposition is the CUD weights' (issue
    #22: with the task weights unique A was black), while the fused image is still the task weights'."""
    import torch
    from defusion_rt.fusion import decompose, decomposition_network
    from defusion_rt.imageio import read_image
    rc, _, err = fuse(*pair, "-o", tmp_path / "f.png", "--model", "defusion_fast", "--decomposition")
    assert rc == 0, err
    a, b = read_image(pair[0]), read_image(pair[1])
    with torch.no_grad():
        want = decompose(decomposition_network("defusion_fast"), a, b, "ir-vis", torch.device("cpu"))
    unique_a = cv2.imread(str(tmp_path / "f_unique_a.png"))[..., ::-1].astype(np.float32) / 255
    assert unique_a.mean() > 0.02  # not black
    assert np.abs(unique_a - want["unique_a"]).max() < 2 / 255


def test_fuse_folders_pairs_by_name(tmp_path, weights, rng):
    for d in "ab":
        (tmp_path / d).mkdir()
        for name in ["x", "y"]:
            cv2.imwrite(str(tmp_path / d / f"{name}.png"), (rng.random((40, 50, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "a" / "lonely.png"), np.zeros((40, 50), np.uint8))
    rc, out, err = fuse(tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--task", "multi-focus",
                        "--weights", weights)
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png", "y.png"]
    assert "no partner" in out and cv2.imread(str(tmp_path / "out" / "x.png")).shape == (40, 50, 3)


@pytest.mark.parametrize("case, message", [
    ("missing", "input not found"),
    ("corrupt", "corrupt"),
    ("mismatch", "size mismatch"),
    ("task", "unknown task"),
    ("weights", "weights file not found"),
])
def test_fuse_bad_input_is_one_clear_line(pair, weights, tmp_path, case, message):
    a, b = pair
    extra = ["--weights", weights]
    if case == "missing":
        a = tmp_path / "nope.png"
    elif case == "corrupt":
        a = tmp_path / "bad.png"
        a.write_bytes(b"\x89PNG broken")
    elif case == "mismatch":
        cv2.imwrite(str(tmp_path / "small.png"), np.zeros((30, 30), np.uint8))
        b = tmp_path / "small.png"
    elif case == "task":
        extra += ["--task", "painting"]
    elif case == "weights":
        extra = ["--weights", tmp_path / "none.pt"]
    rc, _, err = fuse(a, b, "-o", tmp_path / "o.png", *extra)
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_resize_allows_mismatched_sizes(pair, weights, tmp_path):
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((30, 30), np.uint8))
    rc, _, err = fuse(pair[0], tmp_path / "small.png", "-o", tmp_path / "o.png", "--weights", weights, "--resize")
    assert rc == 0, err
    assert cv2.imread(str(tmp_path / "o.png")).shape[:2] == (72, 96)


@pytest.mark.data
def test_fuse_a_tno_pair_keeps_its_size(weights, tmp_path):
    tno = shared("ir_vis", "TNO")
    rc, _, err = fuse(tno / "ir" / "01.png", tno / "vis" / "01.png", "-o", tmp_path / "t.png", "--weights", weights)
    assert rc == 0, err
    assert cv2.imread(str(tmp_path / "t.png")).shape[:2] == cv2.imread(str(tno / "ir" / "01.png")).shape[:2]


def test_fuse_with_a_classical_method_needs_no_weights(pair, tmp_path):
    rc, _, err = fuse(*pair, "-o", tmp_path / "m.png", "--method", "max")
    assert rc == 0, err
    ir, vis = (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(int) for p in pair)
    out = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_GRAYSCALE).astype(int)
    assert np.abs(out - np.maximum(ir, vis)).mean() < 2  # the max of the grey sources
    rc, _, err = fuse(*pair, "-o", tmp_path / "x.png", "--method", "max", "--decomposition")
    assert rc == 2 and "needs the network" in err and "Traceback" not in err
