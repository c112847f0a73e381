"""Cross-modal registration (`--method auto`): thermal and visible images share edges, not intensities.

1. Structure maps: gradient magnitude divided by its local average, so an edge counts the same whatever its
   contrast or polarity in either camera.
2. Coarse global search at low resolution: every rotation x scale on a grid, translation by normalised
   cross-correlation (the best shift of each candidate); the best score wins.
3. Refinement: ECC on the structure maps, coarse to fine, from that start (ECC alone finds wrong optima); affine
   at each level, then a homography at the finest, kept only when it aligns the maps better.
4. A check that means something: the aligned maps must correlate clearly better than the unaligned ones and
   than the typical wrong candidate of the search; the transform must be plausible (determinant, shear,
   perspective). The confidence in [0, 1] and the verdict travel with the estimate; a failed check is never used
   silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UserError

COARSE_WIDTH = 160       # pixels across for the global search
ANGLES = np.arange(-6.0, 6.01, 1.5)          # degrees
SCALES = np.exp(np.linspace(math.log(0.88), math.log(1.12), 9))
SHIFT_FRACTION = 0.08    # translation searched: +- this fraction of the width (about 50 px at 640)
MIN_CONFIDENCE = 0.15    # below: untrusted (chosen on benchmarks/registration: wrong estimates scored 0-0.14)


@dataclass
class CrossModalResult:
    matrix: np.ndarray       # 3x3, B pixel -> A pixel
    confidence: float        # 0 (no better than a wrong guess) .. 1 (as distinct as it gets)
    score: float             # NCC of the aligned structure maps over their overlap
    score_unaligned: float   # the same with B only scaled to A's size
    plausible: bool
    trusted: bool
    reason: str              # why it is untrusted ("" when trusted)


def _grey(img: np.ndarray) -> np.ndarray:
    img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    return img.astype(np.float32)


def structure(img: np.ndarray, width: int) -> np.ndarray:
    """Contrast-normalised gradient magnitude at `width` pixels across (polarity and gain do not matter)."""
    g = _grey(img)
    s = width / g.shape[1]
    g = cv2.resize(g, (width, max(8, round(g.shape[0] * s))), interpolation=cv2.INTER_AREA)
    g = cv2.GaussianBlur(g, (0, 0), 1.0)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    local = cv2.GaussianBlur(mag, (0, 0), 8.0)
    return mag / (local + 0.1 * float(mag.mean()) + 1e-6)


def _scale_matrix(s: float) -> np.ndarray:
    """Pixel-centre-correct scaling between two resolutions (x + 0.5) * s - 0.5."""
    return np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])


def _similarity(angle_deg: float, scale: float, centre: tuple[float, float]) -> np.ndarray:
    return np.vstack([cv2.getRotationMatrix2D(centre, angle_deg, scale), [0, 0, 1]])


def _ncc(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    x, y = x[mask], y[mask]
    if x.size < 100:
        return -1.0
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else -1.0


def aligned_score(sa: np.ndarray, sb: np.ndarray, h: np.ndarray) -> float:
    """NCC of A's structure map and B's warped by h (both at one resolution) over B's footprint."""
    size = sa.shape[1::-1]
    warped = cv2.warpPerspective(sb, h, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones_like(sb, np.uint8), h, size, flags=cv2.INTER_NEAREST).astype(bool)
    return _ncc(sa, warped, cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool))


def coarse_search(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Best similarity (B map -> A map, same resolution) over the angle x scale grid; returns it, its score and
    every candidate's score (the spread of wrong answers, for the confidence)."""
    h, w = sa.shape
    m = max(2, int(round(SHIFT_FRACTION * w)))
    centre = ((w - 1) / 2, (h - 1) / 2)
    best, best_score, scores = None, -2.0, []
    for angle in ANGLES:
        for scale in SCALES:
            sim = _similarity(angle, scale, centre)
            warped = cv2.warpAffine(sb, sim[:2], (w, h), flags=cv2.INTER_LINEAR)
            templ = warped[m:h - m, m:w - m]
            if templ.std() < 1e-6:
                scores.append(-1.0)
                continue
            res = cv2.matchTemplate(sa, templ, cv2.TM_CCOEFF_NORMED)
            _, score, _, (dx, dy) = cv2.minMaxLoc(res)
            scores.append(score)
            if score > best_score:
                shift = np.array([[1, 0, dx - m], [0, 1, dy - m], [0, 0, 1.0]])
                best, best_score = shift @ sim, score
    return best, best_score, np.array(scores)


def _refine(sa: np.ndarray, sb: np.ndarray, start: np.ndarray, model: str, iterations: int) -> np.ndarray:
    """ECC on the structure maps (same resolution), from `start`; the start survives when ECC fails."""
    motion = cv2.MOTION_HOMOGRAPHY if model == "homography" else cv2.MOTION_AFFINE
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-4)
    warp = np.linalg.inv(start).astype(np.float32)  # ECC maps template (A) coordinates to input (B) coordinates
    try:
        _, warp = cv2.findTransformECC(sa, sb, warp if motion == cv2.MOTION_HOMOGRAPHY else warp[:2], motion,
                                       criteria, None, 3)
    except cv2.error:
        return start
    warp = warp if warp.shape == (3, 3) else np.vstack([warp, [0, 0, 1]])
    return np.linalg.inv(warp.astype(np.float64))


def plausible(h: np.ndarray, size: tuple[int, int]) -> tuple[bool, str]:
    """A camera pair's transform: orientation kept, scale within 2x, little shear and perspective."""
    a = h[:2, :2] / h[2, 2]
    det = float(np.linalg.det(a))
    if not np.isfinite(h).all() or det <= 0:
        return False, "the transform mirrors or collapses the image"
    if not 0.5 < math.sqrt(det) < 2.0:
        return False, f"scale {math.sqrt(det):.2f} between the cameras is implausible"
    sv = np.linalg.svd(a, compute_uv=False)
    if sv[0] / sv[1] > 1.3:
        return False, f"shear/anisotropy {sv[0] / sv[1]:.2f} is implausible"
    w, hh = size
    corners = np.float64([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]]) @ (h / h[2, 2]).T
    if corners[:, 2].min() <= 0 or corners[:, 2].max() / corners[:, 2].min() > 1.3:
        return False, "perspective too strong for two cameras side by side"
    return True, ""


def estimate_crossmodal(a: np.ndarray, b: np.ndarray, model: str = "homography",
                        refine_width: int = 640) -> CrossModalResult:
    """B -> A transform for IR/visible pairs (any resolutions), with its confidence and verdict."""
    if model not in ("homography", "affine"):
        raise UserError(f"unknown registration model '{model}'; use homography or affine")
    wa, ha = a.shape[1], a.shape[0]
    wb = b.shape[1]
    coarse_a, coarse_b = structure(a, COARSE_WIDTH), structure(b, COARSE_WIDTH)
    # B's map is resampled to A's aspect at the coarse width: the search then runs in one frame.
    coarse_b = cv2.resize(coarse_b, coarse_a.shape[1::-1], interpolation=cv2.INTER_AREA)
    sim, best, scores = coarse_search(coarse_a, coarse_b)
    # Refine coarse to fine in A's frame (B's map resized into it), up to A's width or `refine_width`.
    h_ref, width = sim, COARSE_WIDTH
    for level_width in (min(320, refine_width, wa), min(refine_width, wa)):
        if level_width <= width and width != COARSE_WIDTH:
            continue
        f = level_width / width
        start = np.diag([f, f, 1.0]) @ h_ref @ np.diag([1 / f, 1 / f, 1.0])
        ra = structure(a, level_width)
        rb = cv2.resize(structure(b, level_width), ra.shape[1::-1], interpolation=cv2.INTER_AREA)
        # Affine first at every level: its 6 parameters are pinned by the structure in the middle of the image,
        # where a homography's perspective terms can swing the corners (benchmarks/registration).
        h_ref = _refine(ra, rb, start, "affine", 60 if level_width <= 320 else 25)
        score, score_start = aligned_score(ra, rb, h_ref), aligned_score(ra, rb, start)
        if score < score_start:  # refinement wandered off: keep the start
            h_ref, score = start, score_start
        if model == "homography" and level_width == min(refine_width, wa):  # then perspective, if it aligns better
            h_hom = _refine(ra, rb, h_ref, "homography", 25)
            s_hom = aligned_score(ra, rb, h_hom)
            if s_hom > score:
                h_ref, score = h_hom, s_hom
        width = level_width
    # Scores for the verdict at the search's resolution, where the wrong candidates were scored.
    down = np.diag([COARSE_WIDTH / width, COARSE_WIDTH / width, 1.0])
    score = aligned_score(coarse_a, coarse_b, down @ h_ref @ np.linalg.inv(down))
    score_unaligned = aligned_score(coarse_a, coarse_b, np.eye(3))
    # Back to full resolution: B pixel -> B in A's frame at `width` -> A at `width` -> A pixel.
    sx, sy = ra.shape[1] / b.shape[1], ra.shape[0] / b.shape[0]
    to_ref_b = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    h = _scale_matrix(wa / ra.shape[1]) @ h_ref @ to_ref_b
    h /= h[2, 2]
    typical_wrong = float(np.median(scores))
    confidence = float(np.clip((score - typical_wrong) / max(1e-6, 1 - typical_wrong), 0, 1))
    ok, why = plausible(h, (wb, b.shape[0]))
    reason = why
    if ok and confidence < MIN_CONFIDENCE:
        reason = (f"the aligned views agree little better than a wrong guess (confidence {confidence:.2f} < "
                  f"{MIN_CONFIDENCE})")
    return CrossModalResult(h, confidence, score, score_unaligned, ok, ok and confidence >= MIN_CONFIDENCE, reason)
