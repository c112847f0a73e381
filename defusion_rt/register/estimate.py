"""Estimating the B->A transform from frames: `auto` (cross-modal search, refinement and a validity check, see
crossmodal.py; the default), plain ECC on gradient magnitudes or ORB features with MAGSAC (baselines that fail
on most IR/visible pairs: benchmarks/registration/), or a chessboard seen by both cameras (heat it, or use
materials of different emissivity, for thermal cameras)."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import UserError
from .crossmodal import estimate_crossmodal
from .registration import Registration


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img


def _gradient(img: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(_grey(img).astype(np.float32), (0, 0), 1.0)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return mag / (mag.max() + 1e-6)


def _scale(size_a, size_b) -> np.ndarray:
    """B pixel -> A pixel under cv2.resize, whose pixel centres sit at (x + 0.5) * scale - 0.5."""
    sx, sy = size_a[0] / size_b[0], size_a[1] / size_b[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def corner_rms(h1: np.ndarray, h2: np.ndarray, size_b) -> float:
    """RMS distance between B's four corners mapped by h1 and by h2."""
    w, h = size_b
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    d = cv2.perspectiveTransform(corners, h1) - cv2.perspectiveTransform(corners, h2)
    return float(np.sqrt((d ** 2).sum(-1).mean()))


def estimate_ecc(a: np.ndarray, b: np.ndarray, model: str = "homography", levels: int = 3,
                 iterations: int = 200) -> Registration:
    """Coarse-to-fine ECC on gradient magnitude images; residual = RMS corner change of the last refinement."""
    size_a, size_b = a.shape[1::-1], b.shape[1::-1]
    ga = _gradient(a)
    gb = cv2.resize(_gradient(b), size_a, interpolation=cv2.INTER_LINEAR)  # B at A's scale first
    motion = cv2.MOTION_HOMOGRAPHY if model == "homography" else cv2.MOTION_AFFINE
    warp = np.eye(3, dtype=np.float32)
    prev = warp.copy()
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-6)
    for level in reversed(range(levels)):
        f = 2 ** level
        ta = cv2.resize(ga, (size_a[0] // f, size_a[1] // f), interpolation=cv2.INTER_AREA)
        tb = cv2.resize(gb, (size_a[0] // f, size_a[1] // f), interpolation=cv2.INTER_AREA)
        s = np.diag([1 / f, 1 / f, 1]).astype(np.float32)
        w = s @ warp @ np.linalg.inv(s)
        prev = warp.copy()
        try:
            # findTransformECC maps template coords to input coords: template = B, input = A.
            _, w = cv2.findTransformECC(tb, ta, w if motion == cv2.MOTION_HOMOGRAPHY else w[:2], motion, criteria,
                                        None, 5)
        except cv2.error:
            raise UserError("ECC registration did not converge: the views overlap too little or look too "
                            "different; use method auto or a calibration file") from None
        w = w if w.shape == (3, 3) else np.vstack([w, [0, 0, 1]])
        warp = (np.linalg.inv(s) @ w @ s).astype(np.float32)
    h = warp.astype(np.float64) @ _scale(size_a, size_b)
    residual = corner_rms(h, prev.astype(np.float64) @ _scale(size_a, size_b), size_b)
    return Registration(h, tuple(size_a), tuple(size_b), model, "crop", residual)


def estimate_features(a: np.ndarray, b: np.ndarray, model: str = "homography") -> Registration:
    """ORB keypoints on both, ratio-tested matches, MAGSAC; residual = RMS reprojection error of the inliers."""
    orb = cv2.ORB_create(4000)
    ka, da = orb.detectAndCompute(_grey(a), None)
    kb, db = orb.detectAndCompute(_grey(b), None)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        raise UserError("too few features to register the pair; use method auto or a calibration file")
    matches = [m for m, n in (p for p in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(db, da, k=2) if len(p) == 2)
               if m.distance < 0.8 * n.distance]
    if len(matches) < 8:
        raise UserError(f"only {len(matches)} feature matches between the views; use method auto or a calibration "
                        "file")
    pb = np.float32([kb[m.queryIdx].pt for m in matches])
    pa = np.float32([ka[m.trainIdx].pt for m in matches])
    if model == "homography":
        h, inl = cv2.findHomography(pb, pa, cv2.USAC_MAGSAC, 3.0)
    else:
        m, inl = cv2.estimateAffine2D(pb, pa, method=cv2.RANSAC, ransacReprojThreshold=3.0)
        h = None if m is None else np.vstack([m, [0, 0, 1]])
    if h is None:
        raise UserError("no consistent transform between the views; use method auto or a calibration file")
    inl = inl.ravel().astype(bool)
    proj = cv2.perspectiveTransform(pb[inl].reshape(-1, 1, 2), h).reshape(-1, 2)
    residual = float(np.sqrt(((proj - pa[inl]) ** 2).sum(1).mean()))
    return Registration(h, a.shape[1::-1], b.shape[1::-1], model, "crop", residual)


def _find_board(img: np.ndarray, board: tuple[int, int], kind: str) -> np.ndarray | None:
    """The board's points in one view, or None. A heated board can show either polarity in the thermal camera, so
    the inverted image is tried too."""
    g = _grey(img)
    for view in (g, 255 - g):
        if kind == "chessboard":
            ok, pts = cv2.findChessboardCornersSB(view, board)
        else:  # an asymmetric circle grid: dark blobs on a light board
            ok, pts = cv2.findCirclesGrid(view, board, flags=cv2.CALIB_CB_ASYMMETRIC_GRID)
        if ok:
            return pts.reshape(-1, 2)
        if kind == "chessboard":
            return None  # corners do not depend on polarity: no second try needed
    return None


def estimate_board(pairs: list[tuple[np.ndarray, np.ndarray]], board: tuple[int, int], kind: str = "chessboard",
                   model: str = "homography") -> Registration:
    """A calibration board (`chessboard`: inner corners; `circles`: an asymmetric circle grid, the usual thermal
    target) seen in both views, over every frame pair where both find it; residual = RMS reprojection error."""
    pa_all, pb_all = [], []
    for a, b in pairs:
        ca, cb = _find_board(a, board, kind), _find_board(b, board, kind)
        if ca is not None and cb is not None:
            pa_all.append(ca)
            pb_all.append(cb)
    if not pa_all:
        what = "chessboard (inner corners)" if kind == "chessboard" else "asymmetric circle grid (circles per row x rows)"
        raise UserError(f"no {board[0]}x{board[1]} {what} found in both views; check --board and, for thermal "
                        "cameras, heat (or cool) the board so it stands out")
    pa, pb = np.concatenate(pa_all), np.concatenate(pb_all)
    if model == "homography":
        h, _ = cv2.findHomography(pb, pa, 0)
    else:
        h = np.vstack([cv2.estimateAffine2D(pb, pa, method=cv2.LMEDS)[0], [0, 0, 1]])
    proj = cv2.perspectiveTransform(pb.reshape(-1, 1, 2), h).reshape(-1, 2)
    residual = float(np.sqrt(((proj - pa) ** 2).sum(1).mean()))
    a0, b0 = pairs[0]
    return Registration(h, a0.shape[1::-1], b0.shape[1::-1], model, "crop", residual)


def estimate_auto(a: np.ndarray, b: np.ndarray, model: str = "homography") -> Registration:
    """Cross-modal search + refinement + check (crossmodal.py); residual = corner change of the refinement."""
    r = estimate_crossmodal(a, b, model)
    return Registration(r.matrix, a.shape[1::-1], b.shape[1::-1], model, "crop", None, r.confidence, r.trusted,
                        r.reason)


def estimate(a: np.ndarray, b: np.ndarray, method: str = "auto", model: str = "homography") -> Registration:
    if method == "auto":
        return estimate_auto(a, b, model)
    if method == "ecc":
        return estimate_ecc(a, b, model)
    if method == "features":
        return estimate_features(a, b, model)
    raise UserError(f"unknown registration method '{method}'; use auto, ecc, features, chessboard or circles")


def combine(regs: list[Registration], agree_px: float = 3.0) -> Registration:
    """One registration from several frame pairs: the median of the trusted estimates' corner positions.

    Estimates that disagree by more than `agree_px` at a corner make the result untrusted (a moving rig, or a
    wrong optimum on some frames)."""
    good = [r for r in regs if r.trusted] or regs[:1]
    if len(good) == 1:
        return good[0]
    w, h = good[0].size_b
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    mapped = np.stack([cv2.perspectiveTransform(corners, r.matrix).reshape(-1, 2) for r in good])
    median = np.median(mapped, axis=0).astype(np.float32)
    m = cv2.getPerspectiveTransform(corners.reshape(-1, 2), median)
    spread = float(np.linalg.norm(mapped - median, axis=2).max())
    conf = [r.confidence for r in good if r.confidence is not None]
    out = Registration(m, good[0].size_a, good[0].size_b, good[0].model, good[0].fov, spread,
                       float(np.median(conf)) if conf else None)
    if spread > agree_px:
        out.trusted, out.note = False, f"the {len(good)} frame estimates disagree by up to {spread:.1f} px"
    return out
