"""Known-warp registration benchmark on real IR/visible pairs (registered by their authors).

For each pair, the visible image is warped by seeded random homographies (rotation within 4 degrees, scale within
8%, shift within 30 px at 640 px, slight perspective); each method estimates the visible->IR transform; the error
is the mean distance between the four image corners mapped by the estimate and by the truth. A method's own check
must flag every estimate over 10 px ("no silent wrong answer").

    python benchmarks/registration/run.py [--shared ../shared/data] [--warps 3] [--json benchmarks/registration/results.json]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from defusion_rt.bench.telemetry import cpu_name  # noqa: E402
from defusion_rt.errors import UserError  # noqa: E402
from defusion_rt.register import estimate_ecc, estimate_features  # noqa: E402
from defusion_rt.register.crossmodal import estimate_crossmodal  # noqa: E402


def _frames(video: Path, positions: list[float]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    out = []
    for p in positions:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(p * (n - 1)))
        ok, f = cap.read()
        if ok:
            out.append(f)
    cap.release()
    return out


METHODS = ("auto", "ecc", "features")


def load_pairs(shared: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if not (shared / "ir_vis/VIFB/ir").is_dir():
        print(f"error: no IR-visible data under {shared}; pass --shared with the path of ../shared/data",
              file=sys.stderr)
        raise SystemExit(2)
    pairs = []
    for ir in sorted((shared / "ir_vis_video/M3SVD/ir").glob("*.mp4")):  # every clip, three moments
        vis = ir.parent.parent / "vis" / ir.name
        for k, (a, b) in enumerate(zip(_frames(ir, [0.1, 0.5, 0.9]), _frames(vis, [0.1, 0.5, 0.9]))):
            pairs.append((f"M3SVD/{ir.stem}#{k}", a, b))
    for seq in sorted(p for p in shared.glob("ir_vis_video/TNO_*") if p.is_dir()):
        names = sorted(p.name for p in (seq / "ir").iterdir())
        for name in (names[0], names[len(names) // 2]):
            pairs.append((f"{seq.name}/{name}", cv2.imread(str(seq / "ir" / name)), cv2.imread(str(seq / "vis" / name))))
    for ir in sorted((shared / "ir_vis/VIFB/ir").iterdir()):
        vis = next((shared / "ir_vis/VIFB/vis").glob(ir.stem + ".*"))
        pairs.append((f"VIFB/{ir.stem}", cv2.imread(str(ir)), cv2.imread(str(vis))))
    return pairs


def random_warp(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A homography of the kind two side-by-side cameras differ by, scaled to the image (30 px at 640)."""
    w, h = size
    k = w / 640
    angle, scale = rng.uniform(-4, 4), math.exp(rng.uniform(math.log(0.92), math.log(1.08)))
    sim = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale), [0, 0, 1]])
    shift = np.array([[1, 0, rng.uniform(-30, 30) * k], [0, 1, rng.uniform(-30, 30) * k], [0, 0, 1]])
    persp = np.array([[1, 0, 0], [0, 1, 0], [rng.uniform(-2e-5, 2e-5) / k, rng.uniform(-2e-5, 2e-5) / k, 1]])
    return shift @ sim @ persp


def narrow_view(a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thermal camera with a narrower field of view than the visible one, as most rigs have: A's central part
    (60-85% of its width, up to 3% off-centre) scaled back to A's size. Returns it and the map A pixel -> it."""
    h, w = a.shape[:2]
    f = rng.uniform(0.6, 0.85)
    cx, cy = w / 2 + rng.uniform(-0.03, 0.03) * w, h / 2 + rng.uniform(-0.03, 0.03) * h
    crop = np.array([[1 / f, 0, w / 2 - cx / f], [0, 1 / f, h / 2 - cy / f], [0, 0, 1.0]])  # (cx, cy) -> centre
    return cv2.warpAffine(a, crop[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), crop


def corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.float64([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)


def corner_error(h_est: np.ndarray, h_true: np.ndarray, size: tuple[int, int],
                 at: np.ndarray | None = None) -> float:
    """Mean distance, in A's pixels, between B's corners (or the B points `at`) mapped by the estimate and h_true."""
    c = corners(size) if at is None else at
    d = cv2.perspectiveTransform(c, h_est) - cv2.perspectiveTransform(c, h_true)
    return float(np.sqrt((d ** 2).sum(-1)).mean())


def run_method(method: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray | None, bool, str]:
    """(estimate B->A or None, flagged by its own check, note)."""
    try:
        if method == "auto":
            r = estimate_crossmodal(a, b)
            return r.matrix, not r.trusted, f"confidence {r.confidence:.2f}"
        reg = (estimate_ecc if method == "ecc" else estimate_features)(a, b)
        return reg.matrix, False, f"residual {reg.residual_px:.2f}"  # these have no validity check: never flagged
    except UserError as err:
        return None, True, str(err)[:80]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--warps", type=int, default=3)
    p.add_argument("--methods", default="auto,ecc,features")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument("--narrow-thermal", action="store_true",
                   help="the thermal view is also cut to 60-85%% of its width (a narrower field of view than the "
                        "visible camera's); results go to results_narrow_thermal.json unless --json says otherwise")
    p.add_argument("--json")
    p.add_argument("--reference", default=str(Path(__file__).parent / "reference.json"),
                   help="control-point references from reference.py (pairs without one are left out of that column)")
    args = p.parse_args()
    default = "results_narrow_thermal.json" if args.narrow_thermal else "results.json"
    args.json = args.json or str(Path(__file__).parent / default)
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        p.error(f"unknown method(s) {', '.join(sorted(unknown))}; choose from {', '.join(METHODS)}")
    pairs = load_pairs(Path(args.shared))[:args.limit]
    try:
        refs = json.loads(Path(args.reference).read_text()) if Path(args.reference).exists() else {}
    except json.JSONDecodeError as err:
        p.error(f"{args.reference} is not valid JSON ({err}); remake it with reference.py")
    rng = np.random.default_rng(0)
    trials = []
    for name, a, b in pairs:
        # The method's own answer on the pair as the authors registered it: the "repeatability" error compares
        # each warped estimate with it, which separates the estimator's precision from the data's registration.
        own = {m: run_method(m, a, b)[0] for m in args.methods.split(",")}
        for k in range(args.warps):
            size = b.shape[1::-1]
            warp = random_warp(size, rng)
            moved = cv2.warpPerspective(b, warp, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            a_seen, crop = narrow_view(a, rng) if args.narrow_thermal else (a, np.eye(3))
            truth = crop @ np.linalg.inv(warp)  # moved visible -> IR, if the data set's registration were exact
            ref = refs.get(name, {})
            ref_truth = crop @ np.array(ref["matrix"]) @ np.linalg.inv(warp) if ref.get("holds") else None
            # With a narrower thermal view B's corners lie outside the fused image: measure at A's corners instead.
            at = cv2.perspectiveTransform(corners(a.shape[1::-1]), np.linalg.inv(truth)) if args.narrow_thermal \
                else None
            for method in args.methods.split(","):
                t0 = time.perf_counter()
                h, flagged, note = run_method(method, a_seen, moved)
                dt = time.perf_counter() - t0
                err = corner_error(h, truth, size, at) if h is not None else float("inf")
                rep = corner_error(h, crop @ own[method] @ np.linalg.inv(warp), size, at) \
                    if h is not None and own[method] is not None else float("inf")
                ref_err = None if ref_truth is None else corner_error(h, ref_truth, size, at) if h is not None \
                    else float("inf")
                trials.append(dict(pair=name, warp=k, method=method, error_px=err, repeat_px=rep, ref_px=ref_err,
                                   flagged=flagged,
                                   seconds=dt, note=note, size=list(size)))
                shown = float("nan") if ref_err is None else ref_err
                print(f"{name:28s} w{k} {method:8s} {err:9.2f} px ref {shown:7.2f} {'FLAGGED' if flagged else '':7s} "
                      f"{dt:5.2f} s {note}", flush=True)
    summary = {}
    for method in args.methods.split(","):
        rows = [t for t in trials if t["method"] == method]
        errs = np.array([t["error_px"] for t in rows])
        silent = [t for t in rows if t["error_px"] > 10 and not t["flagged"]]
        reps = np.array([t["repeat_px"] for t in rows])
        kept = np.array([t["error_px"] for t in rows if not t["flagged"]])  # the estimates a run would use
        refd = np.array([t["ref_px"] for t in rows if t.get("ref_px") is not None])
        silent_ref = [t for t in rows if t.get("ref_px") is not None and t["ref_px"] > 10 and not t["flagged"]]
        summary[method] = dict(trials=len(rows), median_px=float(np.median(errs)),
                               trusted=len(kept), trusted_median_px=float(np.median(kept)) if kept.size else None,
                               trusted_under_3px=float(np.mean(kept < 3)) if kept.size else None,
                               repeat_median_px=float(np.median(reps)), repeat_under_3px=float(np.mean(reps < 3)),
                               p90_px=float(np.percentile(errs, 90)), under_3px=float(np.mean(errs < 3)),
                               ref_trials=len(refd), ref_median_px=float(np.median(refd)) if refd.size else None,
                               ref_p90_px=float(np.percentile(refd, 90)) if refd.size else None,
                               ref_under_3px=float(np.mean(refd < 3)) if refd.size else None,
                               ref_silent_wrong=len(silent_ref),
                               failures=int(np.sum(~np.isfinite(errs))), flagged=int(sum(t["flagged"] for t in rows)),
                               silent_wrong=len(silent), median_s=float(np.median([t["seconds"] for t in rows])))
    for m, s in summary.items():
        print(f"{m:8s} median {s['median_px']:.2f} px, p90 {s['p90_px']:.2f} px, under 3 px {s['under_3px']:.0%}, "
              f"flagged {s['flagged']}, silent wrong (>10 px, not flagged) {s['silent_wrong']}, "
              f"{s['median_s']:.2f} s per estimate")
    out = dict(machine=dict(cpu=cpu_name(), platform=platform.platform()), warps_per_pair=args.warps,
               narrow_thermal=args.narrow_thermal,
               pairs=len(pairs), reference_pairs=sum(bool(refs.get(n, {}).get("holds")) for n, _, _ in pairs),
               summary=summary, trials=trials)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    md = Path(args.json).with_suffix(".md")
    md.write_text(table(out))
    print(f"wrote {args.json} and {md}")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _px(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def table(out: dict) -> str:
    refs = out.get("reference_pairs", 0)
    lines = [f"{out['pairs']} real pairs x {out['warps_per_pair']} seeded warps, on {out['machine']['cpu']}; "
             "corner error = mean distance of the four image corners mapped by the estimate and by the reference."
             + (" The thermal view is cut to 60-85% of its width (a narrower field of view than the visible "
                "camera's; `--narrow-thermal`); the error is measured at the thermal image's corners, the fused "
                "image's, since the visible image's lie outside it." if out.get("narrow_thermal") else ""), "",
             f"Against the control-point reference (`reference.py`; {refs} pairs where it holds):", "",
             "| method | trials | median px | p90 px | under 3 px | wrong (>10 px) and not flagged | "
             "s per estimate (median) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m, s in out["summary"].items():
        under = s.get("ref_under_3px")
        under = "-" if under is None else f"{under:.1%} ({round(under * s['ref_trials'])})"
        lines.append(f"| {m} | {s.get('ref_trials', 0)} | {_px(s.get('ref_median_px'))} | {_px(s.get('ref_p90_px'))} | "
                     f"{under} | {s.get('ref_silent_wrong', '-')} | {s['median_s']:.2f} |")
    lines += ["", "Against the data sets' own registration (every pair), and repeatability:", "",
              "| method | median px | p90 px | under 3 px | not flagged: median px | not flagged: under 3 px | "
              "repeatability median px | repeatability under 3 px | failed | flagged by its check | "
              "wrong (>10 px) and not flagged |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, s in out["summary"].items():
        kept = (f"{s['trusted_median_px']:.2f} ({s['trusted']})", _pct(s["trusted_under_3px"])) \
            if s.get("trusted") else ("-", "-")
        lines.append(f"| {m} | {s['median_px']:.2f} | {s['p90_px']:.2f} | {s['under_3px']:.0%} | {kept[0]} | "
                     f"{kept[1]} | {s['repeat_median_px']:.2f} | {s['repeat_under_3px']:.0%} | {s['failures']} | "
                     f"{s['flagged']} | {s['silent_wrong']} |")
    lines += ["", "Per set (auto):", "",
              "| set | trials | median px | under 3 px | with a reference | vs reference: median px "
              "| repeatability median px | flagged |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    sets = sorted({t["pair"].split("/")[0] for t in out["trials"]})
    for name in sets:
        rows = [t for t in out["trials"] if t["method"] == "auto" and t["pair"].split("/")[0] == name]
        if rows:
            e, r = np.array([t["error_px"] for t in rows]), np.array([t["repeat_px"] for t in rows])
            ref = [t["ref_px"] for t in rows if t.get("ref_px") is not None]
            lines.append(f"| {name} | {len(rows)} | {np.median(e):.2f} | {np.mean(e < 3):.0%} | {len(ref)} | "
                         f"{_px(float(np.median(ref)) if ref else None)} | {np.median(r):.2f} | "
                         f"{sum(t['flagged'] for t in rows)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
