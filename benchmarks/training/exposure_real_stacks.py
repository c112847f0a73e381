"""Experiment (not a recipe): fine-tune the shipped multi-exposure weights of the real-time variant with
MEF-SSIM on real exposure stacks, as issue #22 proposes. Four IFCNN stacks train (every pair of frames two or
more exposure steps apart, the frame between them as a light L1 brightness anchor), two (chair, igloo: their
darkest and brightest frames) validate every two minutes; MEFB is scored once, on the checkpoint validation chose.

    python benchmarks/training/exposure_real_stacks.py WEIGHTS LR MINUTES L1_WEIGHT > log.txt

Both runs in benchmarks/training/fast/multi_exposure_real_stacks/ lowered validation; nothing shipped.
"""
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from defusion_rt.metrics import score
from defusion_rt.model import create_model
from defusion_rt.train.synthetic import mef_ssim

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi_exposure"
VAL = {"chair", "igloo"}
BEST = "/tmp/exposure_real_stacks_best.pt"


def load(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)


def stack_pairs() -> tuple[list, list]:
    """Training triples (darker, brighter, the frame between) and validation pairs, frames sorted by mean level."""
    train, val = [], []
    for scene in sorted((DATA / "IFCNN_MEseq").iterdir()):
        frames = sorted((load(f) for f in sorted(scene.iterdir())), key=lambda x: x.mean())
        if scene.name in VAL:
            val.append((frames[0], frames[-1]))
            continue
        train += [(frames[i], frames[j], frames[(i + j) // 2])
                  for i in range(len(frames)) for j in range(i + 2, len(frames))]
    return train, val


@torch.no_grad()
def mean_mef_ssim(model, pairs: list) -> float:
    model.eval()
    scores = []
    for a, b in pairs:
        if b.shape != a.shape:
            b = cv2.resize(b, a.shape[1::-1])
        f = model.fused(tensor(a)[None], tensor(b)[None])[0].permute(1, 2, 0).clamp(0, 1).numpy()
        scores.append(score(a, b, f, "multi-exposure")["MEF-SSIM"])
    model.train()
    return float(np.mean(scores))


def crop(triple, rng, size: int = 128) -> list[torch.Tensor]:
    h, w = triple[0].shape[:2]
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    out = [p[y:y + size, x:x + size] for p in triple]
    if rng.random() < 0.5:
        out = [p[:, ::-1] for p in out]
    return [tensor(p) for p in out]


def main() -> None:
    weights, lr, minutes, l1_weight = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train, val = stack_pairs()
    mefb = [(load(p), load(str(p).replace("/under/", "/over/"))) for p in sorted((DATA / "MEFB" / "under").iterdir())]
    print(len(train), "train pairs", len(val), "val", len(mefb), "mefb", flush=True)
    model = create_model("defusion_fast", weights=weights)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best = mean_mef_ssim(model, val)
    print("val0", best, flush=True)
    torch.save(model.state_dict(), BEST)
    model.train()
    t0, it, next_check = time.time(), 0, 120
    while time.time() - t0 < minutes * 60:
        a, b, middle = (torch.stack(x) for x in zip(*[crop(train[rng.integers(len(train))], rng) for _ in range(8)]))
        f = model(a, b, activate=False).fused
        grey = [255 * x.mean(1, keepdim=True) for x in (a, b, f)]
        loss = (1 - mef_ssim(*grey)).mean() + l1_weight * (f - middle).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        if it % 20 == 0:
            print(it, round(loss.item(), 4), flush=True)
        if time.time() - t0 > next_check:
            v = mean_mef_ssim(model, val)
            print("check", it, "val", round(v, 4), flush=True)
            next_check += 120
            if v > best:
                best = v
                torch.save(model.state_dict(), BEST)
    v = mean_mef_ssim(model, val)
    print("final val", v)
    if v > best:
        best = v
        torch.save(model.state_dict(), BEST)
    model.load_state_dict(torch.load(BEST))
    print("best val", best, "MEFB", mean_mef_ssim(model, mefb), flush=True)


if __name__ == "__main__":
    main()
