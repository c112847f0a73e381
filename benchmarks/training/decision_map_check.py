"""What a decision-map head reads and does: on real pairs and on synthetic training pairs, how much the fused
embedding e_c + e_ua + e_ub changes when the sources are swapped (the first head read it: near zero means it cannot
tell which source is sharp, so it collapsed), how far e_ua - e_ub is from changing sign under the swap (what the
head reads now), the range of the map's logits, how much of it is saturated (w < 0.01 or > 0.99), the mean of w
(1 = source A everywhere) and mean |w(a, b) + w(b, a) - 1| (0 = the fused image ignores the sources' order); plus
the synthetic focus masks' mean (the pairs are symmetric when it is 0.5).

    python benchmarks/training/decision_map_check.py runs/fast_focus_dmap/model.pt \
        --a ../shared/data/multi_focus/Lytro_triple/a --b ../shared/data/multi_focus/Lytro_triple/c \
        --photos ../shared/data/train_natural/small320 --out benchmarks/training/fast/multi_focus_dmap/check.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from defusion_rt.fusion import pair_folders  # noqa: E402
from defusion_rt.imageio import read_image  # noqa: E402
from defusion_rt.model import create_model  # noqa: E402
from defusion_rt.train.synthetic import defocus_pair, focus_mask  # noqa: E402


def inspect(model, a: np.ndarray, b: np.ndarray) -> dict:
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), np.float32))[None]  # noqa: E731
    rel = lambda x, y: float((x - y).norm() / x.norm().clamp_min(1e-12))  # noqa: E731
    with torch.no_grad():
        (c1, ua1, ub1), (c2, ua2, ub2) = model.embed(t(a), t(b)), model.embed(t(b), t(a))
        logits, swapped = model.head_fused(ua1, ub1), model.head_fused(ua2, ub2)
    w = torch.sigmoid(logits)
    return dict(fused_embedding_swap_change=rel(c1 + ua1 + ub1, c2 + ua2 + ub2),
                difference_swap_antisymmetry_error=rel(ua1 - ub1, ub2 - ua2),
                logit_min=float(logits.min()), logit_max=float(logits.max()), w_mean=float(w.mean()),
                saturated=float(((w < 0.01) | (w > 0.99)).float().mean()),
                swap_inconsistency=float((w + torch.sigmoid(swapped) - 1).abs().mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = create_model("defusion_fast", weights=args.weights).eval()
    if not model.cfg.decision_map:
        sys.exit(f"{args.weights} has no decision-map head")
    pairs, _ = pair_folders(Path(args.a), Path(args.b))
    real = {Path(pa).stem: inspect(model, read_image(pa), read_image(pb)) for pa, pb in pairs}
    rng = np.random.default_rng(0)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".png"))[:4]
    synthetic = {}
    for p in photos:
        img = read_image(p)
        s = min(img.shape[:2])
        synthetic[p.stem] = inspect(model, *defocus_pair(np.ascontiguousarray(img[:s, :s]), rng))
    masks = [float(focus_mask(128, rng).mean()) for _ in range(500)]
    out = dict(weights=args.weights, command=" ".join(sys.argv), real=real, synthetic=synthetic,
               focus_mask_mean=float(np.mean(masks)), focus_mask_draws=len(masks))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k in ("focus_mask_mean",)}), f"wrote {args.out}")


if __name__ == "__main__":
    main()
