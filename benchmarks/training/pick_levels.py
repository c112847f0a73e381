"""How many fine Laplacian levels the fast network's detail pick (model/fast.py DetailPick) should take: the
shipped multi-exposure weights without the pick, and with it added at its start (gain PICK_GAIN, no learned bias)
for 1, 2 and 3 levels, against the Laplacian pyramid, on the validation pairs (MEF-SSIM, the task's
primary metric). The count is a constant of the architecture; this is what chose it.

    python benchmarks/training/exposure_val_pairs.py /tmp/me_val
    python benchmarks/training/pick_levels.py --a /tmp/me_val/a --b /tmp/me_val/b \
        --json benchmarks/training/fast/pick_levels.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import defusion_rt.model.fast as fast
from defusion_rt.bench.telemetry import machine
from defusion_rt.engines.classical import LaplacianEngine
from defusion_rt.errors import UserError
from defusion_rt.evaluate import pair_folders
from defusion_rt.fusion.fuser import to_image, to_tensor
from defusion_rt.imageio import read_image
from defusion_rt.metrics import score
from defusion_rt.model import create_model
from defusion_rt.model.fast import DeFusionFast, FastConfig


def networks() -> dict:
    shipped = create_model("defusion_fast", pretrained=True, task="multi-exposure")
    plain = DeFusionFast(FastConfig(shipped.cfg.width))  # the same weights without the pick
    plain.load_state_dict({k: v for k, v in shipped.state_dict().items() if not k.startswith("head_pick.")})
    nets = {"without_pick": plain.eval()}
    for levels in (1, 2, 3):
        fast.PICK_LEVELS = levels  # read when DetailPick is built
        nets[f"pick_{levels}"] = plain.with_fused_head(False, False, pick=True).eval()
    return nets


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--json")
    args = p.parse_args()
    try:
        pairs, _ = pair_folders(Path(args.a), Path(args.b))
    except UserError as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    if not pairs:
        p.exit(2, f"{p.prog}: error: no file names in common between {args.a} and {args.b}; pairs match by name\n")
    nets, lap = networks(), LaplacianEngine(torch.device("cpu"))
    per_pair: dict[str, dict] = {}
    for pa, pb in pairs:
        a, b = read_image(pa), read_image(pb)
        ta, tb = to_tensor(a, "cpu"), to_tensor(b, "cpu")
        outs = {k: to_image(n.fused(ta, tb).clamp(0, 1)) for k, n in nets.items()}
        outs["laplacian"] = to_image(lap(ta, tb))
        for k, f in outs.items():
            per_pair.setdefault(k, {})[pa.stem] = score(a, b, f, "multi-exposure")["MEF-SSIM"]
    mean = {k: float(np.mean(list(v.values()))) for k, v in per_pair.items()}
    print(json.dumps(mean, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine(), command=" ".join(["python", *sys.argv]),
                                                   metric="MEF-SSIM", mean=mean, per_pair=per_pair), indent=1))


if __name__ == "__main__":
    main()
