"""Cross-modal registration (`--method auto`): thermal and visible images share edges, not intensities.

1. Structure maps: gradient magnitude divided by its local average, so an edge counts the same whatever its
   contrast or polarity in either camera.
2. Coarse global search at low resolution, both views at one width and each with its own aspect ratio: every
   rotation x scale on a grid (fields of view up to 2x apart, either way round), translation by normalised
   cross-correlation (the best shift of each candidate); the best score wins.
3. Refinement: ECC on the structure maps, coarse to fine, from that start (ECC alone finds wrong optima); affine
   at each level, then a homography at the finest, kept only when it aligns the maps better.
4. A check that means something: the aligned maps must correlate clearly better than the unaligned ones and
   than the typical wrong candidate of the search; the transform must be plausible (determinant, shear,
   perspective); and the reverse estimate (A onto B) must agree with it. The confidence in [0, 1] and the
   verdict travel with the estimate; a failed check is never used silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UserError

COARSE_WIDTH = 160       # pixels across for the global search (both maps; B keeps its own aspect ratio)
ANGLES = np.arange(-6.0, 6.01, 1.5)          # degrees
# B -> A scale, both maps at one width: 1 is the same horizontal field of view. Side-by-side thermal and visible
# cameras often differ by far more than a few percent (a 50-degree thermal core beside a 90-degree webcam).
SCALES = np.exp(np.arange(math.log(0.5), math.log(2.0) + 1e-9, math.log(1.03)))
SHIFT_FRACTION = 0.1     # translation searched where B covers A: +- this fraction of the width (64 px at 640)
MIN_TEMPLATE = 0.2       # the part of B inside A's frame must cover this fraction of A to be scored
ROUND_TRIP = 0.01        # of A's width: how far A's corners may move through both estimates (6 px at 640)
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


def _similarity_between(angle_deg: float, scale: float, centre_b, centre_a) -> np.ndarray:
    """B map -> A map: rotate and scale about B's centre, which lands on A's centre."""
    m = _similarity(angle_deg, scale, centre_b)
    m[:2, 2] += np.subtract(centre_a, centre_b)
    return m


def _template_box(sim: np.ndarray, size_b, size_a, margin: int) -> tuple[int, int, int, int] | None:
    """The axis-aligned box, in A's frame, inside both B's footprint and A's frame less `margin` (None if small)."""
    wb, hb = size_b
    wa, ha = size_a
    c = cv2.perspectiveTransform(np.float64([[[0, 0], [wb, 0], [wb, hb], [0, hb]]]), sim)[0]
    xs, ys = np.sort(c[:, 0]), np.sort(c[:, 1])
    x0, x1 = max(math.ceil(xs[1]) + 1, margin), min(math.floor(xs[2]) - 1, wa - margin)
    y0, y1 = max(math.ceil(ys[1]) + 1, margin), min(math.floor(ys[2]) - 1, ha - margin)
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < MIN_TEMPLATE * wa * ha:
        return None
    return x0, y0, x1, y1


def coarse_search(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Best similarity B map -> A map (both COARSE_WIDTH across) over the angle x scale grid; returns it, its score
    and every candidate's score (the spread of wrong answers, for the confidence).

    Each candidate warps B into A's frame; the part of it inside A (less a margin) slides over A's map by
    normalised cross-correlation: +-margin where B covers A, anywhere in A where B is the smaller view."""
    (ha, wa), (hb, wb) = sa.shape, sb.shape
    m = max(2, int(round(SHIFT_FRACTION * wa)))
    centre_a, centre_b = ((wa - 1) / 2, (ha - 1) / 2), ((wb - 1) / 2, (hb - 1) / 2)
    best, best_score, scores = None, -2.0, []
    for angle in ANGLES:
        for scale in SCALES:
            sim = _similarity_between(angle, scale, centre_b, centre_a)
            box = _template_box(sim, (wb, hb), (wa, ha), m)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            templ = cv2.warpAffine(sb, sim[:2], (wa, ha), flags=cv2.INTER_LINEAR)[y0:y1, x0:x1]
            if templ.std() < 1e-6:
                scores.append(-1.0)
                continue
            res = cv2.matchTemplate(sa, templ, cv2.TM_CCOEFF_NORMED)
            _, score, _, (dx, dy) = cv2.minMaxLoc(res)
            scores.append(score)
            if score > best_score:
                shift = np.array([[1, 0, dx - x0], [0, 1, dy - y0], [0, 0, 1.0]])
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


def plausible(h: np.ndarray, size_b: tuple[int, int], size_a: tuple[int, int] | None = None) -> tuple[bool, str]:
    """A camera pair's transform: orientation kept, fields of view within 2.5x of each other (scale measured with
    both images at one width), little shear and perspective."""
    a = h[:2, :2] / h[2, 2]
    det = float(np.linalg.det(a))
    if not np.isfinite(h).all() or det <= 0:
        return False, "the transform mirrors or collapses the image"
    scale = math.sqrt(det) * (size_b[0] / size_a[0] if size_a else 1.0)
    if not 0.4 < scale < 2.5:
        return False, f"scale {scale:.2f} between the cameras' views is implausible"
    sv = np.linalg.svd(a, compute_uv=False)
    if sv[0] / sv[1] > 1.3:
        return False, f"shear/anisotropy {sv[0] / sv[1]:.2f} is implausible"
    w, hh = size_b
    corners = np.float64([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]]) @ (h / h[2, 2]).T
    if corners[:, 2].min() <= 0 or corners[:, 2].max() / corners[:, 2].min() > 1.3:
        return False, "perspective too strong for two cameras side by side"
    return True, ""


def _one_way(a: np.ndarray, b: np.ndarray, model: str, refine_width: int) -> tuple[np.ndarray, float, float, float]:
    """B -> A: (matrix in full-resolution pixels, confidence, aligned score, unaligned score)."""
    wa = a.shape[1]
    coarse_a, coarse_b = structure(a, COARSE_WIDTH), structure(b, COARSE_WIDTH)  # each keeps its aspect ratio
    sim, _, scores = coarse_search(coarse_a, coarse_b)
    if sim is None:  # no candidate put enough of B inside A
        raise UserError(f"the views' shapes ({a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}) are too "
                        "different to register automatically; calibrate the rig with a board "
                        "(`defusion-rt calibrate --method chessboard`)")
    # Refine coarse to fine, both maps at one width (A's, or `refine_width`), B map -> A map.
    h_ref, width = sim, COARSE_WIDTH
    for level_width in (min(320, refine_width, wa), min(refine_width, wa)):
        if level_width <= width and width != COARSE_WIDTH:
            continue
        f = level_width / width
        start = np.diag([f, f, 1.0]) @ h_ref @ np.diag([1 / f, 1 / f, 1.0])
        ra, rb = structure(a, level_width), structure(b, level_width)
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
    unaligned = np.diag([coarse_a.shape[1] / coarse_b.shape[1], coarse_a.shape[0] / coarse_b.shape[0], 1.0])
    score_unaligned = aligned_score(coarse_a, coarse_b, unaligned)  # B simply stretched over A
    typical_wrong = float(np.median(scores))
    confidence = float(np.clip((score - typical_wrong) / max(1e-6, 1 - typical_wrong), 0, 1))
    # Back to full resolution: B pixel -> B map -> A map -> A pixel.
    to_map_b = np.array([[rb.shape[1] / b.shape[1], 0, 0], [0, rb.shape[0] / b.shape[0], 0], [0, 0, 1.0]])
    to_map_b[:2, 2] = 0.5 * to_map_b[[0, 1], [0, 1]] - 0.5
    h = _scale_matrix(wa / ra.shape[1]) @ h_ref @ to_map_b
    return h / h[2, 2], confidence, score, score_unaligned


def round_trip_px(h_ab: np.ndarray, h_ba: np.ndarray, size_a: tuple[int, int]) -> float:
    """Mean distance A's corners move when taken to B by one estimate and back by the other."""
    w, h = size_a
    c = np.float64([[[0, 0], [w, 0], [w, h], [0, h]]])
    back = cv2.perspectiveTransform(cv2.perspectiveTransform(c, h_ba), h_ab)
    return float(np.linalg.norm(back - c, axis=2).mean())


def estimate_crossmodal(a: np.ndarray, b: np.ndarray, model: str = "homography",
                        refine_width: int = 640) -> CrossModalResult:
    """B -> A transform for IR/visible pairs (any resolutions and fields of view), with its confidence and verdict.

    A trusted estimate must also agree with the reverse one (A onto B), within ROUND_TRIP of A's width: a wrong
    optimum rarely has a consistent partner, and a high score alone let one through on low-texture pairs."""
    if model not in ("homography", "affine"):
        raise UserError(f"unknown registration model '{model}'; use homography or affine")
    h, confidence, score, score_unaligned = _one_way(a, b, model, refine_width)
    ok, reason = plausible(h, b.shape[1::-1], a.shape[1::-1])
    if ok and confidence < MIN_CONFIDENCE:
        reason = (f"the aligned views agree little better than a wrong guess (confidence {confidence:.2f} < "
                  f"{MIN_CONFIDENCE})")
    if not reason:
        trip = round_trip_px(h, _one_way(b, a, model, refine_width)[0], a.shape[1::-1])
        if trip > ROUND_TRIP * a.shape[1]:
            reason = (f"the estimate and the reverse one (A onto B) disagree by {trip:.1f} px: the views share "
                      "too little structure")
    return CrossModalResult(h, confidence, score, score_unaligned, ok, not reason, reason)
