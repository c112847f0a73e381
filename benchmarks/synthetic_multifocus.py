"""Multi-focus fusion with ground truth: sharp natural photographs that training never saw (scikit-image's
sample images), each blurred in complementary regions to make a pair; PSNR/SSIM of each method's fusion against
the sharp original.

    pip install scikit-image
    python benchmarks/synthetic_multifocus.py [--weights FILE] [--json benchmarks/evaluation/synthetic_multifocus.json]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from defusion_rt.evaluate import print_table, run_evaluation, write_outputs

PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "grass", "gravel", "brick"]


def make_pairs(root: Path, sigma: float = 2.5, seed: int = 0) -> None:
    import skimage.data
    rng = np.random.default_rng(seed)
    for d in ("a", "b", "gt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
        sharp = img.astype(np.float32)
        blur = cv2.GaussianBlur(sharp, (0, 0), sigma)
        h, w = img.shape[:2]
        field = cv2.resize(rng.random((4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        mask = cv2.GaussianBlur((field > np.median(field)).astype(np.float32), (0, 0), 3)[..., None]  # soft edge
        a = mask * sharp + (1 - mask) * blur  # a is in focus where mask = 1
        b = (1 - mask) * sharp + mask * blur
        for d, x in (("a", a), ("b", b), ("gt", sharp)):
            cv2.imwrite(str(root / d / f"{name}.png"), cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights")
    p.add_argument("--methods", default="defusion,defusion_fast,defusion_fast-cud,average,max,laplacian")
    p.add_argument("--json", default="benchmarks/evaluation/synthetic_multifocus.json")
    p.add_argument("--sheet", default="benchmarks/evaluation/synthetic_multifocus.jpg")
    args = p.parse_args()
    from rich.console import Console
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_pairs(root)
        report = run_evaluation("multi-focus", root / "a", root / "b", args.methods.split(","), gt=root / "gt",
                                weights=args.weights, sheet=Path(args.sheet), sheet_pairs=3)
    print_table(report, Console(width=160), "synthetic multi-focus (scikit-image photos, complementary blur)")
    write_outputs(report, dict(a="skimage.data blurred", b="skimage.data blurred", gt="skimage.data"), args.json, None,
                  args.json.replace(".json", ".md"), "synthetic multi-focus with ground truth (scikit-image photos)")


if __name__ == "__main__":
    main()
