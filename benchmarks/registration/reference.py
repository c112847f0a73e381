"""Reference registrations for the benchmark's real pairs, independent of the estimators under test.

The data sets' own registration is not exact: on some pairs the thermal and visible edges sit 5-10 px apart
(VIFB kettle, TNO Nato_camp; see README.md). This script measures each pair's residual misregistration from local
control points, with no global search and no ECC (so it shares no machinery with `auto` beyond an edge map):

1. Both images' structure maps (contrast-normalised gradient magnitude) at full resolution.
2. A grid of patches on the thermal map; each patch with enough structure is matched by normalised
   cross-correlation within +-SEARCH px on the visible map, to a sub-pixel peak (parabola through the
   neighbours); a match counts when its peak is high and clearly above the next-best peak elsewhere.
3. An affine transform fitted to the matches with RANSAC (1.5 px), then by least squares to the inliers. Affine,
   not a homography: the control points sit where the structure is, and a homography's perspective terms,
   extrapolated to the image corners, would move them by more than the residual being measured. The reference
   holds when enough matches agree, spread over the image, with a small residual.

    python benchmarks/registration/reference.py [--shared ../shared/data] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from defusion_rt.register.crossmodal import structure  # noqa: E402
from run import corner_error, load_pairs  # noqa: E402

PATCH = 48          # control-point patch side at 640 px wide (scaled with the image)
SEARCH = 16         # +- px searched around the data set's registration
MIN_PEAK = 0.45     # NCC a match must reach
MIN_MARGIN = 0.08   # and by how much it must beat the best peak 4+ px away (repeated texture is ambiguous)
MIN_INLIERS = 12
MIN_SPREAD = 0.5    # inliers must span this fraction of the width and of the height
MAX_RMS = 1.0       # px, inlier residual


def _subpixel(res: np.ndarray, x: int, y: int) -> tuple[float, float]:
    def vertex(l: float, c: float, r: float) -> float:
        d = l - 2 * c + r
        return 0.0 if d >= 0 else float(np.clip(0.5 * (l - r) / d, -0.5, 0.5))
    dx = vertex(res[y, x - 1], res[y, x], res[y, x + 1]) if 0 < x < res.shape[1] - 1 else 0.0
    dy = vertex(res[y - 1, x], res[y, x], res[y + 1, x]) if 0 < y < res.shape[0] - 1 else 0.0
    return x + dx, y + dy


def control_points(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matched (visible point, thermal point) pairs, both in full-resolution pixels."""
    h, w = a.shape[:2]
    sa, sb = structure(a, w), structure(b, w)
    sb = cv2.resize(sb, (w, h), interpolation=cv2.INTER_AREA) if sb.shape != sa.shape else sb
    p = max(24, round(PATCH * w / 640)) // 2 * 2
    m = max(8, round(SEARCH * w / 640))
    src, dst = [], []
    step = p // 2
    for y0 in range(m, h - p - m, step):
        for x0 in range(m, w - p - m, step):
            templ = sa[y0:y0 + p, x0:x0 + p]
            if templ.std() < 0.25 * sa.std():  # flat: nothing to match
                continue
            win = sb[y0 - m:y0 + p + m, x0 - m:x0 + p + m]
            res = cv2.matchTemplate(win, templ, cv2.TM_CCOEFF_NORMED)
            _, peak, _, (px, py) = cv2.minMaxLoc(res)
            if peak < MIN_PEAK or px in (0, res.shape[1] - 1) or py in (0, res.shape[0] - 1):
                continue
            masked = res.copy()
            cv2.circle(masked, (px, py), 4, -1.0, -1)
            if peak - masked.max() < MIN_MARGIN:
                continue
            sx, sy = _subpixel(res, px, py)
            centre = (x0 + (p - 1) / 2, y0 + (p - 1) / 2)
            dst.append(centre)                                  # thermal
            src.append((centre[0] + sx - m, centre[1] + sy - m))  # where it is in the visible image
    sx, sy = b.shape[1] / w, b.shape[0] / h  # visible points back to the visible image's own pixels
    src = np.float64(src).reshape(-1, 2)
    src = np.stack([(src[:, 0] + 0.5) * sx - 0.5, (src[:, 1] + 0.5) * sy - 0.5], 1) if len(src) else src
    return src, np.float64(dst).reshape(-1, 2)


def _least_squares_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    x = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(x, dst, rcond=None)
    return np.vstack([sol.T, [0, 0, 1]])


def reference(a: np.ndarray, b: np.ndarray) -> dict:
    src, dst = control_points(a, b)
    out = dict(matches=len(src), inliers=0, rms_px=None, matrix=None, holds=False, why="")
    if len(src) < MIN_INLIERS:
        out["why"] = f"{len(src)} control points matched (need {MIN_INLIERS})"
        return out
    am, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5, maxIters=5000,
                                    confidence=0.999)
    if am is None:
        out["why"] = "no affine transform fits the control points"
        return out
    inl = mask.ravel().astype(bool)
    hm = _least_squares_affine(src[inl], dst[inl]) if inl.sum() >= 3 else np.vstack([am, [0, 0, 1]])
    d = cv2.perspectiveTransform(src[inl].reshape(-1, 1, 2), hm).reshape(-1, 2) - dst[inl]
    rms = float(np.sqrt((d ** 2).sum(1).mean()))
    spread = np.ptp(dst[inl], 0) / np.array([a.shape[1], a.shape[0]]) if inl.any() else np.zeros(2)
    out.update(inliers=int(inl.sum()), rms_px=rms, matrix=hm.tolist(), spread=spread.tolist())
    if inl.sum() < MIN_INLIERS:
        out["why"] = f"{int(inl.sum())} control points agree (need {MIN_INLIERS})"
    elif spread.min() < MIN_SPREAD:
        out["why"] = f"control points cover {spread.min():.0%} of the image across (need {MIN_SPREAD:.0%})"
    elif rms > MAX_RMS:
        out["why"] = f"control points fit to {rms:.2f} px rms (need {MAX_RMS})"
    else:
        out["holds"] = True
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--json", default=str(Path(__file__).parent / "reference.json"))
    args = p.parse_args()
    refs = {}
    for name, a, b in load_pairs(Path(args.shared)):
        r = reference(a, b)
        off = None if r["matrix"] is None else corner_error(np.array(r["matrix"]), np.eye(3), b.shape[1::-1])
        r["offset_px"] = off  # how far the data set's own registration is off, by the corners
        refs[name] = r
        print(f"{name:28s} {'holds' if r['holds'] else 'none ':5s} matches {r['matches']:3d} inliers {r['inliers']:3d} "
              f"rms {r['rms_px'] or 0:.2f} offset {off or 0:6.2f} px {r['why']}", flush=True)
    Path(args.json).write_text(json.dumps(refs, indent=1))
    print(f"wrote {args.json}: {sum(r['holds'] for r in refs.values())} of {len(refs)} pairs have a reference")


if __name__ == "__main__":
    main()
