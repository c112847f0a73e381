import subprocess
import sys

import cv2
import numpy as np
import pytest

from defusion_rt.errors import UserError
from defusion_rt.register import Registration, estimate, estimate_board, load_calibration
from defusion_rt.register.crossmodal import plausible

H = np.array([[1.015, 0.012, -5.5], [-0.009, 0.992, 3.2], [1.2e-5, -1.5e-5, 1.0]])  # B pixel -> A pixel


def corner_error(h_est, h_true, size) -> float:
    w, h = size
    c = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    return float(np.sqrt(((cv2.perspectiveTransform(c, h_est) - cv2.perspectiveTransform(c, h_true)) ** 2).sum(-1)).max())


@pytest.fixture
def warped_pair():
    t = cv2.GaussianBlur(np.random.default_rng(0).random((240, 320)).astype(np.float32), (0, 0), 3)
    a = cv2.applyColorMap(cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8), cv2.COLORMAP_JET)
    b = cv2.warpPerspective(a, np.linalg.inv(H), (320, 240), borderMode=cv2.BORDER_REFLECT)
    return a, b


@pytest.mark.parametrize("method", ["ecc", "features"])
def test_known_homography_recovered_to_under_a_pixel(warped_pair, method):
    a, b = warped_pair
    reg = estimate(a, b, method)
    assert corner_error(reg.matrix, H, (320, 240)) < 1.0
    assert reg.residual_px is not None and reg.residual_px < 1.5


def test_different_resolutions_register_too(warped_pair):
    a, b = warped_pair
    small = cv2.resize(b, (160, 120), interpolation=cv2.INTER_AREA)
    reg = estimate(a, small, "ecc")
    half_pixel = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])  # pixel centres under a 2x area resize
    assert corner_error(reg.matrix, H @ half_pixel, (160, 120)) < 1.0
    fa, fb = reg.align(a, small)
    assert fa.shape == fb.shape and fa.shape[1] >= 300


def test_align_crops_to_the_common_field_of_view():
    shift = Registration(np.array([[1, 0, 10], [0, 1, -6], [0, 0, 1.0]]), (100, 80), (100, 80))
    assert shift.crop_box == (10, 0, 90, 74)
    a, b = np.zeros((80, 100, 3), np.uint8), np.full((80, 100, 3), 9, np.uint8)
    fa, fb = shift.align(a, b)
    assert fa.shape == fb.shape == (74, 90, 3) and (fb == 9).all()
    padded = Registration(shift.matrix, (100, 80), (100, 80), fov="pad")
    assert padded.align(a, b)[1].shape == (80, 100, 3)


@pytest.mark.parametrize("fov", ["crop", "pad"])
def test_the_precomputed_warp_matches_opencvs_warp_perspective(warped_pair, fov):
    _, b = warped_pair
    reg = Registration(H, (320, 240), (320, 240), fov=fov)
    x, y, w, h = reg.crop_box
    expected = cv2.warpPerspective(b, H, (320, 240), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    for _ in range(2):  # the maps are made on the first frame and reused
        got = reg.align(b, b)[1]
        assert got.shape == (h, w, 3)
        diff = np.abs(got.astype(int) - expected[y:y + h, x:x + w])
        assert diff.max() <= 2 and diff.mean() < 0.25  # equal up to rounding (1/32 px sub-pixel steps)


def test_chessboard_calibration():
    board = np.kron((np.indices((7, 10)).sum(0) % 2) * 255, np.ones((24, 24))).astype(np.uint8)
    a = cv2.copyMakeBorder(board, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    b = cv2.warpPerspective(a, np.linalg.inv(H), a.shape[::-1], borderValue=255)
    reg = estimate_board([(a, b)], (9, 6))
    assert corner_error(reg.matrix, H, a.shape[::-1]) < 1.0 and reg.residual_px < 0.5
    with pytest.raises(UserError, match="no 5x5 chessboard"):
        estimate_board([(a, b)], (5, 5))


def circle_grid(cols: int = 4, rows: int = 11, step: int = 18, border: int = 40) -> np.ndarray:
    """An asymmetric circle grid as OpenCV's sample prints it: dark circles on white, odd rows shifted."""
    img = np.full((2 * border + (rows - 1) * step, 2 * border + 2 * cols * step), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            cv2.circle(img, (border + (2 * c + r % 2) * step, border + r * step), step // 3, 0, -1, cv2.LINE_AA)
    return img


def test_an_asymmetric_circle_grid_in_two_views_and_either_polarity():
    a = circle_grid()
    b = 255 - cv2.warpPerspective(a, np.linalg.inv(H), a.shape[::-1], borderValue=255)  # hot circles, as IR sees
    views = [(a, b), (cv2.GaussianBlur(a, (0, 0), 0.8), cv2.GaussianBlur(b, (0, 0), 0.8))]
    reg = estimate_board(views, (4, 11), "circles")
    assert corner_error(reg.matrix, H, a.shape[::-1]) < 1.0 and reg.residual_px < 0.5
    with pytest.raises(UserError, match="no 5x9 asymmetric circle grid"):
        estimate_board(views, (5, 9), "circles")


def test_calibration_round_trip_and_errors(tmp_path):
    reg = Registration(H, (320, 240), (320, 240), residual_px=0.25)
    loaded = load_calibration(reg.save(tmp_path / "c.yaml"))
    assert np.allclose(loaded.matrix, H) and loaded.residual_px == 0.25
    with pytest.raises(UserError, match="not found"):
        load_calibration(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("model: fisheye\nmatrix: [[1,0,0],[0,1,0],[0,0,1]]\nsize_a: [2,2]\nsize_b: [2,2]\n")
    with pytest.raises(UserError, match="does not parse"):
        load_calibration(tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("model: [\n")  # a YAML syntax error: still one line
    with pytest.raises(UserError, match="not valid YAML: .* at line 2, column 1; fix the YAML") as err:
        load_calibration(tmp_path / "broken.yaml")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="recalibrate"):
        loaded.align(np.zeros((100, 100, 3), np.uint8), np.zeros((240, 320, 3), np.uint8))


def test_calibrate_command_writes_a_usable_file(tmp_path, warped_pair):
    a, b = warped_pair
    for name, img in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "000001.png"), img)
    p = subprocess.run([sys.executable, "-m", "defusion_rt", "calibrate", "--a", str(tmp_path / "a"), "--b",
                        str(tmp_path / "b"), "-o", str(tmp_path / "cal.yaml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "confidence" in p.stdout
    assert corner_error(load_calibration(tmp_path / "cal.yaml").matrix, H, (320, 240)) < 1.0


@pytest.mark.parametrize("path", sorted((__import__("conftest").ROOT / "calibration").glob("*.yaml")))
def test_shipped_calibration_files_load(path):
    reg = load_calibration(path)
    a = np.zeros((reg.size_a[1], reg.size_a[0], 3), np.uint8)
    b = np.full((reg.size_b[1], reg.size_b[0], 3), 200, np.uint8)
    oa, ob = reg.align(a, b)
    w, h = reg.output_size
    assert oa.shape == ob.shape == (h, w, 3)
    assert w * h >= 0.5 * reg.size_a[0] * reg.size_a[1]  # a plausible rig keeps most of A's view
    assert (ob == 200).all()                              # and B covers every pixel of the common view


def _crossmodal(rng_seed: int = 1):
    """A scene and a second 'camera' that sees it with inverted, non-linear contrast (hot is dark), warped by H."""
    rng = np.random.default_rng(rng_seed)
    t = cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 2.5)
    t = cv2.normalize(t, None, 0, 1, cv2.NORM_MINMAX)
    for _ in range(12):  # objects with sharp outlines, as real scenes have
        x, y = rng.integers(0, 300), rng.integers(0, 220)
        cv2.rectangle(t, (int(x), int(y)), (int(x) + 30, int(y) + 20), float(rng.random()), -1)
    a = cv2.cvtColor((255 * t).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    other = (255 * (1 - t) ** 2).astype(np.uint8)
    b = cv2.warpPerspective(cv2.cvtColor(other, cv2.COLOR_GRAY2BGR), np.linalg.inv(H), (320, 240),
                            borderMode=cv2.BORDER_REFLECT)
    return a, b


def test_auto_registers_a_cross_modal_pair_to_under_a_pixel():
    a, b = _crossmodal()
    reg = estimate(a, b, "auto")
    assert reg.trusted and reg.confidence > 0.3
    assert corner_error(reg.matrix, H, (320, 240)) < 1.0


def test_auto_refuses_views_whose_shapes_cannot_overlap_enough():
    a, _ = _crossmodal(1)
    strip = np.zeros((16, 320, 3), np.uint8)  # 20:1: no scale puts enough of it inside A
    with pytest.raises(UserError, match="too different to register"):
        estimate(a, strip, "auto")


def test_auto_flags_views_that_do_not_match():
    a, _ = _crossmodal(1)
    unrelated = cv2.GaussianBlur(np.random.default_rng(7).integers(0, 255, (240, 320, 3), np.uint8), (0, 0), 2)
    reg = estimate(a, unrelated, "auto")
    assert not reg.trusted and reg.note


@pytest.mark.parametrize("matrix, ok", [
    (np.eye(3), True),
    (H, True),
    (np.diag([-1.0, 1, 1]), False),                      # mirrored
    (np.diag([3.0, 3, 1]), False),                       # 3x scale between two cameras
    (np.diag([1.8, 1.8, 1]), True),                      # a narrow thermal view beside a wide visible one
    (np.array([[1, 0.6, 0], [0, 1, 0], [0, 0, 1.0]]), False),  # strong shear
    (np.array([[1, 0, 0], [0, 1, 0], [2e-3, 0, 1.0]]), False),  # strong perspective
])
def test_degenerate_estimates_are_rejected(matrix, ok):
    assert plausible(matrix, (320, 240))[0] is ok


def test_plausible_scale_is_measured_between_the_views_not_the_pixel_counts():
    quarter = np.diag([0.25, 0.25, 1.0])  # a 2560-wide camera beside a 640-wide one, same field of view
    assert plausible(quarter, (2560, 1440), (640, 360))[0]
    assert not plausible(quarter, (640, 360), (640, 360))[0]


@pytest.mark.timeout(700)  # the subprocesses carry their own limits: this one must not cut them
def test_calibrate_and_run_refuse_an_untrusted_estimate(tmp_path):
    a, _ = _crossmodal(1)
    unrelated = cv2.GaussianBlur(np.random.default_rng(7).integers(0, 255, (240, 320, 3), np.uint8), (0, 0), 2)
    for name, img in (("a", a), ("b", unrelated)):
        (tmp_path / name).mkdir()
        for k in range(2):
            cv2.imwrite(str(tmp_path / name / f"{k + 1:06d}.png"), img)
    cal = subprocess.run([sys.executable, "-m", "defusion_rt", "calibrate", "--a", str(tmp_path / "a" / "000001.png"),
                          "--b", str(tmp_path / "b" / "000001.png"), "-o", str(tmp_path / "cal.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert cal.returncode == 2 and "failed its check" in cal.stderr and not (tmp_path / "cal.yaml").exists()
    assert "give a still pair with more structure" in cal.stderr and "--frames" not in cal.stderr  # stills: no video
    run = subprocess.run([sys.executable, "-m", "defusion_rt", "run", "--a", str(tmp_path / "a"), "--b",
                          str(tmp_path / "b"), "--method", "average", "--register", "auto", "--record",
                          str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "failed its check" in run.stderr
    assert not (tmp_path / "out.mp4").exists()  # stopped before writing anything


def test_live_reestimation_switches_only_to_a_better_stable_estimate():
    import dataclasses
    import time
    from defusion_rt.register import RegisterSettings, RegisterStage
    a, b = _crossmodal()
    stage = RegisterStage(RegisterSettings(method="auto", reestimate_s=0.01), warn=lambda text: None)
    stage.live = True
    first_a, _ = stage(a, b)
    good = stage.registration
    # Pretend the first estimate was made on a poor scene: 6 px off and barely trusted.
    off = np.array([[1, 0, 6.0], [0, 1, 0], [0, 0, 1]]) @ good.matrix
    stage.registration = dataclasses.replace(good, matrix=off, confidence=0.16)
    stage.registration.crop_box = good.crop_box
    deadline = time.time() + 60
    while stage.switches == 0 and time.time() < deadline:
        out_a, out_b = stage(a, b)
        assert out_a.shape == first_a.shape  # the output size never changes mid-run
        time.sleep(0.02)
    assert stage.switches == 1 and stage.reestimates >= 2  # the switch waited for a second estimate that agrees
    assert corner_error(stage.registration.matrix, H, (320, 240)) < 1.0
    assert "switched 1x" in stage.describe()
    before = stage.switches
    for _ in range(20):  # no estimate is more confident than the one now in use: it stays
        stage(a, b)
        time.sleep(0.02)
    assert stage.switches == before


def _benchmark_reference():
    import importlib.util
    from pathlib import Path
    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "registration"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("registration_reference", folder / "reference.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_the_benchmarks_control_point_reference_recovers_a_small_offset_and_refuses_unrelated_views():
    """The registration benchmark measures against this reference where the data sets are off: it must be right."""
    reference = _benchmark_reference()
    a, _ = _crossmodal(3)
    off = np.array([[1.008, -0.006, 3.4], [0.005, 1.004, -2.6], [0, 0, 1.0]])  # B pixel -> A pixel, a few px
    other = (255 * (1 - cv2.cvtColor(a, cv2.COLOR_BGR2GRAY) / 255.0) ** 2).astype(np.uint8)  # inverted, non-linear
    b = cv2.warpAffine(cv2.cvtColor(other, cv2.COLOR_GRAY2BGR), np.linalg.inv(off)[:2], (320, 240),
                       borderMode=cv2.BORDER_REFLECT)
    ref = reference.reference(a, b)
    assert ref["holds"], ref["why"]
    assert corner_error(np.array(ref["matrix"]), off, (320, 240)) < 0.5
    unrelated = cv2.GaussianBlur(np.random.default_rng(7).integers(0, 255, (240, 320, 3), np.uint8), (0, 0), 2)
    assert not reference.reference(a, unrelated)["holds"]


def _rig_with_a_narrow_thermal_view():
    """A 16:9 visible camera and a 5:4 thermal one seeing 60% of its width, off-centre, with inverted contrast."""
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.random((480, 640)).astype(np.float32), (0, 0), 4)
    scene = cv2.normalize(scene, None, 0, 1, cv2.NORM_MINMAX)
    for _ in range(40):
        x, y = rng.integers(0, 600), rng.integers(0, 440)
        cv2.rectangle(scene, (int(x), int(y)), (int(x) + 50, int(y) + 35), float(rng.random()), -1)

    def view(img, box, size):  # the camera's image of `box` (scene pixels) and the map scene -> image
        x0, y0, x1, y1 = box
        sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)
        m = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1.0]])
        img = cv2.warpAffine((255 * img).astype(np.uint8), m[:2], size, flags=cv2.INTER_AREA)
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), m

    vis, to_vis = view(scene, (0, 60, 640, 420), (480, 270))
    ir, to_ir = view((1 - scene) ** 2, (130, 80, 514, 387), (320, 256))
    return ir, vis, to_ir @ np.linalg.inv(to_vis)  # visible pixel -> thermal pixel


def test_auto_registers_cameras_with_different_fields_of_view_and_aspect_ratios_either_way_round():
    ir, vis, truth = _rig_with_a_narrow_thermal_view()  # a 1.67x field-of-view ratio, 16:9 against 5:4
    reg = estimate(ir, vis, "auto")
    assert reg.trusted and corner_error(reg.matrix, truth, (480, 270)) < 1.0
    swapped = estimate(vis, ir, "auto")  # the wide camera as A
    assert swapped.trusted and corner_error(swapped.matrix, np.linalg.inv(truth), (320, 256)) < 1.0
