"""Writes defusion_rt/model/weights/MODEL_CARD.md from files only: the training run's log and config
(benchmarks/training/) and the evaluation results (benchmarks/evaluation/*.json). No number is typed by hand.

    python benchmarks/model_card.py
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "benchmarks" / "training"
EVAL = ROOT / "benchmarks" / "evaluation"
CARD = ROOT / "defusion_rt" / "model" / "weights" / "MODEL_CARD.md"
PAPER_ITERS, PAPER_BATCH, PAPER_CROP = 637_500, 4, 256
SETS = [("tno", "TNO (IR-visible)"), ("roadscene", "RoadScene (IR-visible)"), ("lytro", "Lytro (multi-focus)"),
        ("mefb", "MEFB (multi-exposure)"), ("synthetic_multifocus", "synthetic multi-focus with ground truth")]


def training_facts() -> dict:
    rows = list(csv.DictReader((TRAIN / "log.csv").open()))
    cfg = yaml.safe_load((TRAIN / "config.yaml").read_text())
    meta = json.loads((TRAIN / "run.json").read_text())
    last = rows[-1]
    tail = rows[-10:]
    mean = {k: sum(float(r[k]) for r in tail) / len(tail) for k in ("total", "common", "unique_a", "unique_b", "recon")}
    it = int(last["iteration"])
    return dict(cfg=cfg, meta=meta, iterations=it, last=last, tail_mean=mean, rows=len(rows),
                samples=it * cfg["train"]["batch"])


def comparison(name: str) -> tuple[str, list[str]]:
    r = json.loads((EVAL / f"{name}.json").read_text())
    mean = r["mean"]
    metrics = [m for m in ("Qabf", "MI", "SSIM", "VIF", "SF", "EN", "PSNR", "SSIM_ref", "MEF-SSIM") if m in mean["average"]]
    lines = [f"| method | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for m in r["methods"]:
        lines.append(f"| {m} | " + " | ".join(f"{mean[m][k]:.3f}" for k in metrics) + " |")
    notes = []
    if "defusion" in mean:
        d = mean["defusion"]
        beats = [k for k in ("Qabf", "MI", "SSIM") if d[k] > mean["average"][k]]
        loses = [k for k in ("Qabf", "MI", "SSIM") if d[k] <= mean["average"][k]]
        notes.append(f"below plain averaging on {', '.join(loses)}" if not beats else
                     f"beats averaging on {', '.join(beats)}" + (f", not on {', '.join(loses)}" if loses else ""))
        if "laplacian" in mean:
            ahead = [k for k in metrics if mean["laplacian"][k] > d[k]]
            notes.append(f"Laplacian pyramid still ahead on {', '.join(ahead) or 'nothing'}")
    return "\n".join(lines), notes


def main() -> None:
    t = training_facts()
    cfg, meta, tr = t["cfg"], t["meta"], t["cfg"]["train"]
    lines = [
        "# Model card: shipped DeFusion weights (`defusion.pt`)", "",
        "Made by `python benchmarks/model_card.py` from `benchmarks/training/` and `benchmarks/evaluation/`.", "",
        "## What they are",
        f"- The paper's network at width {cfg['model']['width']} (7,874,473 parameters), stored as an fp16 state dict "
        "and run in fp32 (or the engine's precision) after loading.",
        f"- Trained by this project with `defusion-rt train` on `{meta['data']}` ({meta['images']} images; no evaluation "
        "set was used) with the recipe `configs/cpu-short.yaml`.",
        f"- Hardware: {meta['hardware']}. Wall time: about {meta['wall_hours']:.1f} h.",
        f"- {t['iterations']:,} iterations of batch {tr['batch']} at {tr['crop']}x{tr['crop']} crops "
        f"({t['samples']:,} samples), loss milestones scaled by {tr['schedule_scale']} (reconstruction term from "
        f"iteration {int(cfg['loss']['recon_start'] * tr['schedule_scale'])}).",
        "", "## How far this is from the paper",
        f"- The paper trained ~{PAPER_ITERS:,} iterations of batch {PAPER_BATCH} at {PAPER_CROP}x{PAPER_CROP} on a GPU: "
        f"{PAPER_ITERS * PAPER_BATCH:,} samples. These weights saw {t['samples'] / (PAPER_ITERS * PAPER_BATCH):.2%} of "
        f"that, at a quarter of the pixels per crop, from {meta['images']} images instead of 50,000.",
        "- Treat them as a working starting point that makes the pipeline fuse real images, not as a reproduction of "
        "the paper's numbers. Retrain with `configs/defusion.yaml` on a GPU for that.",
        "- History: a first run with the paper's He-only initialisation collapsed to constant outputs (dead ReLUs; "
        "its fused head died when the reconstruction term switched on). This run zero-initialises the last conv of "
        "every residual branch, warms the learning rate up over 100 iterations and takes the losses on the heads' "
        "pre-ReLU outputs; the inference network is unchanged.",
        "", "## Training losses",
        f"Final logged values at iteration {t['iterations']} (mean of the last {min(10, t['rows'])} log rows; L1, "
        "summed over the batch): " + ", ".join(f"{k} {v:.4f}" for k, v in t["tail_mean"].items()) + ".", "",
        "![loss curve](../../../benchmarks/training/loss.png)", "",
        "## Evaluation",
        "`bash benchmarks/evaluate_all.sh` (metric conventions: grey BT.601 levels 0-255; MI, SSIM and VIF summed over "
        "both sources; see the README). Means over each set:", ""]
    for name, title in SETS:
        if not (EVAL / f"{name}.json").exists():
            lines += [f"**{title}**: not evaluated.", ""]
            continue
        table, notes = comparison(name)
        lines += [f"**{title}**" + (f": {'; '.join(notes)}." if notes else ""), "", table, "",
                  f"![{name}](../../../benchmarks/evaluation/{name}.png)", ""]
    lines += ["Example sheets show fused results only (defusion, then each baseline), not the source images, "
              "which stay in the shared data. Credits: TNO Image Fusion Dataset (A. Toet, figshare 2014), "
              "RoadScene (Xu et al., FusionDN, AAAI 2020), Lytro (Nejati et al., 2015), MEFB (Zhang, 2021); "
              "scikit-image sample photographs.", ""]
    CARD.write_text("\n".join(lines))
    print(f"wrote {CARD}")


if __name__ == "__main__":
    main()
