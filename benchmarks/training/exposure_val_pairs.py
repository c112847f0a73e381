"""The multi-exposure validation pairs: the darkest and the brightest frame (mean level) of each IFCNN exposure
stack, linked as OUT/a/SCENE.ext and OUT/b/SCENE.ext, the folder pairs `train --val` and `evaluate` read.

    python benchmarks/training/exposure_val_pairs.py /tmp/me_val
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2

STACKS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi_exposure" / "IFCNN_MEseq"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    out = Path(sys.argv[1])
    if not STACKS.is_dir():
        sys.exit(f"{STACKS} is missing: the shared data sits beside the repository")
    for d in "ab":
        (out / d).mkdir(parents=True, exist_ok=True)
    for scene in sorted(p for p in STACKS.iterdir() if p.is_dir()):
        frames = sorted((cv2.imread(str(f)).mean(), f) for f in sorted(scene.iterdir()))
        for d, (_, f) in zip("ab", (frames[0], frames[-1])):
            link = out / d / f"{scene.name}{f.suffix}"
            link.unlink(missing_ok=True)
            link.symlink_to(f.resolve())
    print(f"wrote {out}/a and {out}/b")


if __name__ == "__main__":
    main()
