"""Writes the model cards from files only: the training runs' logs and configs (benchmarks/training/ for the CUD
weights, benchmarks/training/adapt/ for the IR-visible weights) and the evaluation results
(benchmarks/evaluation/*.json). No number is typed by hand.

    python benchmarks/model_card.py        # MODEL_CARD.md, MODEL_CARD_ir_vis.md and MODEL_CARD_fast.md
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "benchmarks" / "training"
EVAL = ROOT / "benchmarks" / "evaluation"
ADAPT = TRAIN / "adapt"
CARD = ROOT / "defusion_rt" / "model" / "weights" / "MODEL_CARD.md"
CARD_IR = ROOT / "defusion_rt" / "model" / "weights" / "MODEL_CARD_ir_vis.md"
CARD_FAST = ROOT / "defusion_rt" / "model" / "weights" / "MODEL_CARD_fast.md"
FAST = TRAIN / "fast"  # cud/, ir_vis/, multi_focus/: config, log, validation of each stage, run.json
RESULTS = ROOT / "benchmarks" / "results"
# DeFusion's TNO row in CDDFuse's table (the evaluator our metrics follow; field-notes A3).
PAPER_TNO = {"EN": 6.95, "SD": 38.41, "SF": 8.21, "MI": 1.78, "SCD": 1.64, "VIF": 0.60, "Qabf": 0.41, "SSIM": 0.96}
PAPER_ITERS, PAPER_BATCH, PAPER_CROP = 637_500, 4, 256
SETS = [("tno", "TNO (IR-visible)"), ("vifb", "VIFB (IR-visible)"), ("m3svd", "M3SVD frames 0111_1716 (IR-visible)"),
        ("roadscene", "RoadScene (IR-visible)"), ("lytro", "Lytro (multi-focus)"), ("mffw", "MFFW (multi-focus)"),
        ("mefb", "MEFB (multi-exposure)"),
        ("synthetic_multifocus", "synthetic multi-focus with ground truth")]
IR_SETS = [("tno", "TNO"), ("vifb", "VIFB"), ("m3svd", "M3SVD frames 0111_1716"),
           ("roadscene", "RoadScene: the adaptation's training data, not a held-out result")]
TARGET = ("Qabf", "MI", "VIF")  # what "better than averaging" means in the issue and the tests


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


def comparison(name: str, method: str = "defusion") -> tuple[str, list[str]]:
    r = json.loads((EVAL / f"{name}.json").read_text())
    mean = r["mean"]
    if method not in mean:
        method = "defusion"
    metrics = [m for m in ("Qabf", "MI", "VIF", "SSIM", "SF", "EN", "SD", "AG", "SCD", "PSNR", "SSIM_ref", "MEF-SSIM")
               if m in mean["average"]]
    lines = [f"| method | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for m in r["methods"]:
        lines.append(f"| {m} | " + " | ".join(f"{mean[m][k]:.3f}" for k in metrics) + " |")
    notes = []
    if method in mean:
        d = mean[method]
        beats = [k for k in TARGET if d[k] > mean["average"][k]]
        loses = [k for k in TARGET if d[k] <= mean["average"][k]]
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
        "`bash benchmarks/evaluate_all.sh` (metrics in the convention of the evaluator published with CDDFuse, "
        "which most tables use; MI, SSIM and VIF summed over both sources; see the README). On IR-visible sets "
        "these weights are the row `defusion-cud`; `defusion` there is the paper network's IR-visible weights "
        "([its card](MODEL_CARD_ir_vis.md)). Means over each set:", ""]
    for name, title in SETS:
        if not (EVAL / f"{name}.json").exists():
            lines += [f"**{title}**: not evaluated.", ""]
            continue
        table, notes = comparison(name, "defusion-cud")
        lines += [f"**{title}**" + (f": `{'defusion-cud' if name in dict(IR_SETS) else 'defusion'}` "
                                    f"{'; '.join(notes)}." if notes else ""), "", table, "",
                  f"![{name}](../../../benchmarks/evaluation/{name}.jpg)", ""]
    lines += ["Example sheets show fused results only (defusion, then each baseline), not the source images, "
              "which stay in the shared data. Credits: TNO Image Fusion Dataset (A. Toet, figshare 2014), "
              "RoadScene (Xu et al., FusionDN, AAAI 2020), Lytro (Nejati et al., 2015), MEFB (Zhang, 2021); "
              "scikit-image sample photographs.", ""]
    CARD.write_text("\n".join(lines))
    print(f"wrote {CARD}")
    ir_vis_card()


STAGES = [("stage 1", "stage1_"), ("stage 2", "")]  # file prefixes in benchmarks/training/adapt/


def _stage(prefix: str) -> dict:
    cfg = yaml.safe_load((ADAPT / f"{prefix}config.yaml").read_text())
    rows = list(csv.DictReader((ADAPT / f"{prefix}log.csv").open()))
    val = list(csv.DictReader((ADAPT / f"{prefix}val.csv").open())) if (ADAPT / f"{prefix}val.csv").is_file() else []
    return dict(cfg=cfg, iterations=int(rows[-1]["iteration"]), val=val)


def ir_vis_card() -> None:
    meta = json.loads((ADAPT / "run.json").read_text())
    stages = [(name, _stage(prefix)) for name, prefix in STAGES if (ADAPT / f"{prefix}log.csv").is_file()]
    tno = json.loads((EVAL / "tno.json").read_text())["mean"] if (EVAL / "tno.json").is_file() else {}
    lines = [
        "# Model card: IR-visible DeFusion weights (`defusion_ir_vis.pt`)", "",
        "Made by `python benchmarks/model_card.py` from `benchmarks/training/adapt/` and `benchmarks/evaluation/`.", "",
        "## What they are",
        "- The paper's network (7,874,473 parameters, fp16 state dict), started from the shipped CUD weights "
        "(`defusion.pt`, [card](MODEL_CARD.md)) and adapted with fusion losses against the two sources: "
        "w_int x L1(F, max(A, B)) + w_grad x L1(|grad F|, max(|grad A|, |grad B|)) (Sobel magnitudes), the "
        "unsupervised losses of the IR-visible literature; no ground truth.",
        f"- Data: {meta['data']}", f"- Hardware: {meta['hardware']}. Wall time: {meta['wall_minutes']} min in all.",
        "- Stages (`defusion-rt train --adapt ir-vis --init ...`, each from the previous stage's weights):"]
    for name, st in stages:
        tr, ad = st["cfg"]["train"], st["cfg"]["adapt"]
        crops = (f"crops of {ad['crop_scale'][0]:.0%}-{ad['crop_scale'][1]:.0%} of the image area shrunk to "
                 f"{tr['crop']} px" if "crop_scale" in ad else
                 f"{tr['crop']} px crops at {ad['zoom'][0]}-{ad['zoom'][1]}x the sources' own scale")
        lines.append(f"  - {name}: {st['iterations']:,} iterations of batch {tr['batch']} ({st['iterations'] * tr['batch']:,} "
                     f"samples), {crops}, lr {tr['lr']} with halvings at {tr['lr_milestones']} of the run, "
                     f"w_int {ad['intensity']}, w_grad {ad['gradient']}.")
    lines += [
        f"- Commands: {meta['command']}",
        "- The paper network's weights for `--task ir-vis` (`--model defusion`, and the `defusion` rows of "
        "`evaluate`) because they beat its CUD weights there (tables below); its other tasks keep the CUD weights. "
        "`--weights defusion_rt/model/weights/defusion.pt` selects the CUD weights for IR-visible too. Without "
        "`--model`, IR-visible pairs go to the real-time variant, which fuses them better "
        "([its card](MODEL_CARD_fast.md)).",
        "- Only the fused head was trained to a target: the common and unique images (`fuse --decomposition`) "
        "drift from the CUD weights' decomposition. Use the CUD weights to look at the decomposition.", "",
        "## How far from the paper and from the Laplacian pyramid (TNO, 25 pairs)", ""]
    if tno:
        keys = [k for k in PAPER_TNO if k in tno.get("defusion", {})]
        lines += ["| | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys),
                  "| DeFusion, authors' weights (CDDFuse's table) | " + " | ".join(f"{PAPER_TNO[k]:.2f}" for k in keys)
                  + " |"]
        for m in ("defusion", "defusion-cud", "laplacian", "average"):
            if m in tno:
                lines.append(f"| {m} (ours, measured) | " + " | ".join(f"{tno[m][k]:.2f}" for k in keys) + " |")
        lines += ["", "Same metric convention as the paper's table (checked against reference values in "
                  "`tests/test_metric_reference.py`); the authors' numbers come from their own weights, so compare "
                  "magnitudes, not third decimals.", ""]
    lines += ["## Quality against samples seen (validation: TNO sequences, not in the tables)", "",
              "Each row is the mean over 8 frame pairs of a sequence; averaging's row was computed by the same code "
              "in the same run. Stage 1 was scored with the project's earlier metric code (replicated Sobel "
              "borders, Gaussian SSIM), stage 2 with the published convention, so compare a row with its own "
              "averaging level, not stage 1 with stage 2.", "",
              "| stage | samples seen | set | Qabf | MI | VIF | averaging's Qabf / MI / VIF |",
              "|---|---:|---|---:|---:|---:|---|"]
    for name, st in stages:
        base = {r["set"]: r for r in st["val"] if r["method"] == "average"}
        for r in st["val"]:
            if r["method"] == "model":
                b = base[r["set"]]
                lines.append(f"| {name} | {int(r['seen']):,} | {r['set']} | {float(r['Qabf']):.3f} | "
                             f"{float(r['MI']):.3f} | {float(r['VIF']):.3f} | {float(b['Qabf']):.3f} / "
                             f"{float(b['MI']):.3f} / {float(b['VIF']):.3f} |")
    lines += ["", "![stage 1 curve](../../../benchmarks/training/adapt/stage1_val.png)",
              "![stage 2 curve](../../../benchmarks/training/adapt/val.png)", "",
              "## Evaluation", "", "![loss](../../../benchmarks/training/adapt/loss.png)", ""]
    for name, title in IR_SETS:
        if (EVAL / f"{name}.json").exists():
            table, notes = comparison(name)
            lines += [f"**{title}**" + (f": `defusion` {'; '.join(notes)}." if notes else ""), "", table, "",
                      f"![{name}](../../../benchmarks/evaluation/{name}.jpg)", ""]
    lines += ["Data terms: RoadScene (Xu et al., FusionDN, AAAI 2020; frames from the FLIR ADAS dataset) was released "
              "for training fusion networks, with a request to cite; TNO Image Fusion Dataset (A. Toet), VIFB (Zhang "
              "et al. 2020) and M3SVD (MIT) are research data used here only for evaluation.", ""]
    CARD_IR.write_text("\n".join(lines))
    print(f"wrote {CARD_IR}")
    fast_card()
    readme_table()


FAST_STAGES = [("cud", "CUD on photographs", "defusion_fast.pt",
                "the start of every task stage; `defusion_fast-cud` in evaluate; the decomposition shown"),
               ("ir_vis", "IR-visible fusion losses on RoadScene, affine head (superseded)", "(not shipped)", "ir-vis"),
               ("ir_vis_edges", "the IR-visible stage continued with twice the gradient term (stopped, see run.json)",
                "(not shipped)", "ir-vis"),
               ("ir_vis_difference", "the IR-visible stage continued with the difference term d (A - B)",
                "(superseded)", "ir-vis"),
               ("ir_vis_difference_more", "the difference-term stage continued at lr 2e-4 (stopped: validation fell)",
                "(not shipped)", "ir-vis"),
               ("ir_vis_contrast", "the difference-term weights continued with half the max-intensity target given to "
                "a local-contrast mix of the sources", "defusion_fast_ir_vis.pt", "ir-vis"),
               ("multi_focus", "synthetic multi-focus pairs from photographs, affine head (superseded)",
                "(not shipped)", "multi-focus"),
               ("multi_focus_more", "the multi-focus stage continued (stopped: validation fell, see run.json)",
                "(not shipped)", "multi-focus"),
               ("multi_focus_map", "synthetic multi-focus pairs, decision-map head (collapsed, see run.json)",
                "(not shipped)", "multi-focus"),
               ("multi_focus_map_normalised", "the decision-map head with normalised embeddings (collapsed too)",
                "(not shipped)", "multi-focus"),
               ("multi_focus_dmap", "the multi-focus stage continued with a decision map read from e_ua - e_ub",
                "defusion_fast_multi_focus.pt", "multi-focus"),
               ("multi_exposure", "synthetic exposure pairs from photographs, MEF-SSIM objective (+0.2 L1); these "
                "weights ship, with the detail pick added (last row)", "(superseded)", "multi-exposure"),
               ("multi_exposure_difference", "the multi-exposure stage continued with the difference term (stopped: "
                "validation fell, see run.json)", "(not shipped)", "multi-exposure"),
               ("multi_exposure_difference_low_lr", "the same at a tenth of the learning rate (stopped: validation "
                "fell again)", "(not shipped)", "multi-exposure"),
               ("multi_exposure_l1", "synthetic exposure pairs from photographs, L1 + gradient (superseded)",
                "(not shipped)", "multi-exposure"),
               ("multi_exposure_pick", "the MEF-SSIM weights with the detail pick added at its start (the Laplacian "
                "pyramid's rule on the finest two levels); training it further lowered validation (stopped, see "
                "run.json): its iteration 0 ships", "defusion_fast_multi_exposure.pt", "multi-exposure")]
FAST_SETS = [("tno", "TNO (IR-visible)", "ir-vis"), ("vifb", "VIFB (IR-visible)", "ir-vis"),
             ("m3svd", "M3SVD frames 0111_1716 (IR-visible)", "ir-vis"),
             ("synthetic_multifocus", "synthetic multi-focus with ground truth", "multi-focus"),
             ("lytro", "Lytro (multi-focus)", "multi-focus"), ("mffw", "MFFW (multi-focus)", "multi-focus"),
             ("mefb", "MEFB (multi-exposure)", "multi-exposure")]


def _cost() -> dict:
    """Parameters and FLOPs per 640x480 pair (fused output) of both networks, counted now."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from defusion_rt.model import create_model, default_weights
    out = {}
    nets = {name: create_model(name) for name in ("defusion_fast", "defusion")}
    for task in ("ir-vis", "multi-focus", "multi-exposure"):  # the fused head differs per task (FastConfig)
        nets[task] = create_model("defusion_fast", weights=default_weights("defusion_fast", task))
    for name, net in nets.items():
        a = torch.zeros(1, 3, 480, 640)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net.fused(a, a)
        out[name] = dict(params=sum(p.numel() for p in net.parameters()), gflop=counter.get_total_flops() / 1e9)
    return out


def _speed() -> list[str]:
    path = RESULTS / "amd-epyc-2c_defusion_fast.json"
    if not path.is_file():
        return ["Not benchmarked yet (`defusion-rt bench --model defusion_fast`)."]
    res = json.loads(path.read_text())
    rows = [r for r in res["records"] if r.get("fps") and (r["width"], r["height"]) == (640, 480) and r["batch"] == 1]
    command = " ".join([Path(res["command"].split()[0]).name, *res["command"].split()[1:]])
    lines = [f"`{command}` on {res['machine']['cpu']} ({res['machine']['cpu_cores']} cores), "
             f"{res['created']} (`benchmarks/results/{path.name}`); model only, 640x480 (padded to "
             f"{rows[0]['input_shape'][1]}x{rows[0]['input_shape'][0]}), batch 1:", "",
             "| engine | precision | FPS | median ms | p95 ms | rel. error vs fp32 |", "|---|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["fps"]):
        lines.append(f"| {r['engine']}{' (NCHW)' if r.get('baseline') else ''} | {r['precision']} | {r['fps']:.1f} | "
                     f"{r['latency_ms_median']:.1f} | {r['latency_ms_p95']:.1f} | {r['rel_err_vs_fp32']:.1e} |")
    if "e2e" in res:
        e = res["e2e"]
        lines += ["", f"End to end ({e['engine']} {e['precision']}: decode both, warp B by a rig-like calibration, "
                  f"fuse, encode {e['codec']}) on "
                  f"`{Path(e['sources'][0]).name}` at {e['width']}x{e['height']}: **{e['fps']:.1f} FPS** over "
                  f"{e['frames']} frames."]
    live = RESULTS / "live_latency_amd-epyc-2c.json"
    if live.is_file():
        r = json.loads(live.read_text())
        lat = r["added_latency_ms"]
        lines += ["", f"Live (`python benchmarks/live_latency.py`: `{Path(r['sources'][0]).name}` delivered as two cameras at "
                  f"{r['source_fps']:.0f} FPS, {r['engine']}): {r['fused']} of {r['frames_in'][0]} pairs fused, "
                  f"{r['dropped']} frame(s) dropped, added latency median {lat['median']:.0f} ms, "
                  f"**95th percentile {lat['p95']:.0f} ms**, max {lat['max']:.0f} ms."]
    return lines


def _int8() -> list[str]:
    """The int8 networks shipped beside the weights (`defusion-rt quantize`), from their reports."""
    lines = ["## int8 networks for OpenVINO", "",
             "Made by `defusion-rt quantize` (NNCF post-training quantization, accuracy control on Qabf + VIF + "
             "MI/5 of held-out calibration pairs); found by the engine through the digest in their name. Quality "
             "on the held-out sets against fp32: README, \"int8 with OpenVINO\" "
             "(`benchmarks/evaluation/cpu_precisions_*.md`).", "",
             "| int8 network | task | calibration / validation pairs | convolutions in int8 | calibration data |",
             "|---|---|---:|---:|---|"]
    for path in sorted(CARD.parent.glob("*.int8.json")):
        r = json.loads(path.read_text())
        src = r["sources"]
        data = ", ".join(sorted({str(Path(x).parent if x.endswith(".mp4") else x) for x in src["a"] + src["data"]}))
        lines.append(f"| `{path.name.replace('.json', '.xml')}` | {r['task']} | {r['calibration_pairs']} / "
                     f"{r['validation_pairs']} | {r['convolutions'] - len(r['float_layers'])} of "
                     f"{r['convolutions']} | {data} |")
    return lines


def _last_validation(path: Path, title: str) -> list[str]:
    if not path.is_file():
        return []
    rows = list(csv.DictReader(path.open()))
    last = max(int(r["iteration"]) for r in rows)
    base = {r["set"]: r for r in rows if r["method"] == "average" and int(r["iteration"]) == last}
    out = []
    for r in rows:
        if r["method"] == "model" and int(r["iteration"]) == last:
            b = base[r["set"]]
            out.append(f"| {title} | {int(r['seen']):,} | {r['set']} | {float(r['Qabf']):.3f} | {float(r['MI']):.3f} | "
                       f"{float(r['VIF']):.3f} | {float(b['Qabf']):.3f} / {float(b['MI']):.3f} / {float(b['VIF']):.3f} |")
    return out


# Issue #22's targets: each task's primary metrics against the best classical method on each, and what limits the
# gap (read from the stopped runs' run.json notes in benchmarks/training/fast/).
CLASSICAL = ("average", "max", "laplacian", "mertens")
IR_LIMIT = ("likely the quarter-resolution mix (the Laplacian pyramid picks detail per pixel at every scale); twice "
            "the gradient term traded MI and VIF for no lasting Qabf (`ir_vis_edges`); the difference term gained "
            "0.010 in 25 minutes; continuing it lowered validation (`ir_vis_difference_more`)")
MF_LIMIT = "the decision map is decided at quarter resolution, so focus boundaries blend over a few pixels"
TARGETS = [("tno", "TNO", "Qabf", IR_LIMIT), ("tno", "TNO", "VIF", IR_LIMIT),
           ("vifb", "VIFB", "Qabf", IR_LIMIT), ("vifb", "VIFB", "VIF", IR_LIMIT),
           ("lytro", "Lytro", "Qabf", MF_LIMIT), ("mffw", "MFFW", "Qabf", MF_LIMIT),
           ("synthetic_multifocus", "synthetic multi-focus", "PSNR", MF_LIMIT),
           ("mefb", "MEFB", "MEF-SSIM", "40 CPU minutes on synthetic exposures only; the difference term that "
            "helped IR-visible lowered validation on real stacks twice (`multi_exposure_difference*`); MEF-SSIM "
            "on four real stacks lowered validation on the other two in both tries, and those two do not track "
            "MEFB (`multi_exposure_real_stacks`); a detail term with HDR-lit pairs raised validation (0.954 -> "
            "0.968) but MEFB only to 0.976, at 0.6 MI (`multi_exposure_detail`): real exposure stacks are too few "
            "here, and synthetic exposures of one photograph do not teach what MEFB asks")]


def _targets() -> list[str]:
    lines = ["## Against the best classical method (issue #22's targets)", "",
             "| set | metric | defusion_fast | averaging | target (best classical) | reached | what limits it |",
             "|---|---|---:|---:|---:|---|---|"]
    for name, title, metric, limit in TARGETS:
        path = EVAL / f"{name}.json"
        if not path.is_file():
            continue
        mean = json.loads(path.read_text())["mean"]
        best = max((m for m in CLASSICAL if m in mean), key=lambda m: mean[m][metric])
        ours, target = mean["defusion_fast"][metric], mean[best][metric]
        reached = "yes" if ours >= target else "no"
        fmt = ".4f" if round(ours, 3) == round(target, 3) else ".3f"  # a tie at three decimals shows a fourth
        avg = mean["average"][metric]
        lines.append(f"| {title} | {metric} | {ours:{fmt}} | {avg:{fmt}} | {target:{fmt}} ({best}) | "
                     f"{reached} | {'' if ours >= target else limit} |")
    return lines + _flicker_target()


def _flicker_target() -> list[str]:
    """Video: no more flicker than averaging (lower is better), steadied (the pipeline's default) and per frame."""
    steady, raw = (EVAL / f"video_flicker_m3svd{s}.json" for s in ("", "_per_frame"))
    if not (steady.is_file() and raw.is_file()):
        return []
    (s, r) = (json.loads(p.read_text())["mean"] for p in (steady, raw))
    ours, avg = s["defusion_fast"]["flicker"], r["average"]["flicker"]
    limit = (f"the contrast-target weights' mix follows local contrast, which sensor noise moves from frame to frame "
             f"({r['defusion_fast']['flicker']:.3f} per frame), and steady.py lets some of it through")
    return [f"| M3SVD video | flicker (lower is better), steadied / per frame | {ours:.3f} ({ours:.1e}) / "
            f"{r['defusion_fast']['flicker']:.3f} | {s['average']['flicker']:.3f} ({s['average']['flicker']:.1e}) / "
            f"{avg:.3f} | {avg:.3f} (averaging, per frame) | {'yes' if ours <= avg else 'no'} | "
            f"{'' if ours <= avg else limit} |"]


def fast_card() -> None:
    cost = _cost()
    f, p = cost["defusion_fast"], cost["defusion"]
    lines = [
        "# Model card: DeFusion-Fast, the real-time CPU variant (`defusion_fast*.pt`)", "",
        "Made by `python benchmarks/model_card.py` from `benchmarks/training/fast/`, `benchmarks/results/` and "
        "`benchmarks/evaluation/`.", "",
        "## What it is",
        f"- `defusion_rt/model/fast.py`: {f['params']:,} parameters, **{f['gflop']:.1f} GFLOP per 640x480 pair** "
        f"(the paper network: {p['params']:,} parameters, {p['gflop']:.0f} GFLOP; {p['gflop'] / f['gflop']:.0f}x "
        "less), counted with torch's FLOP counter on the fused output (inference pads 640x480 to 672x512: 12% more).",
        "- DeFusion's roles kept: a Siamese encoder, an ensembler on the deepest features, a common decoder with "
        "skips from both encoders, a unique decoder run once per source, three heads over 16-channel embeddings; "
        "`fuse --decomposition`, the CUD task and loss, the trainer, engines and benchmark work unchanged.",
        "- What moved: plain 3x3 convs (oneDNN runs them fast in bf16) instead of split-attention bottlenecks, an "
        "encoder strided from its first layer, decoders ending at quarter resolution. Full resolution comes back "
        "as in guided filtering: each head predicts at quarter resolution a per-pixel mix of the two sources (a "
        "weight each and an RGB offset); the smooth coefficient maps are upsampled and applied to the "
        "full-resolution sources, which bring their own detail.",
        "- Per task the fused head can choose a source per pixel from the difference of the unique embeddings "
        "(e_c + e_ua + e_ub barely changes when the sources swap, so a head on it cannot): a decision map "
        "(multi-focus) or an added term d (A - B) (IR-visible). Cost with each task's shipped weights: "
        + ", ".join(f"{t} {cost[t]['params']:,} parameters / {cost[t]['gflop']:.2f} GFLOP"
                    for t in ("ir-vis", "multi-focus", "multi-exposure")) + ".",
        "- Multi-exposure adds a detail pick (`model.pick`, `DetailPick`): the finest two Laplacian-pyramid levels "
        "of the fused image are replaced by the sources' own, chosen per pixel by local contrast, the Laplacian "
        "pyramid's max-abs rule, with a learned gain per level and a learned bias read from e_ua - e_ub. The "
        "shipped weights have them at their start values (training them on synthetic exposures lowered "
        "validation), so in the shipped network that fine detail is the classical rule's and the rest (exposure, "
        "brightness, colour, coarse structure) the network's. MEF-SSIM judges only structure and contrast in "
        "11x11 windows, which is why the pick moved it (validation 0.953 -> 0.972, "
        "`benchmarks/training/fast/pick_levels.json`).", "",
        "## Weights and how they were trained", "",
        "| file | used for | stage | iterations x batch | crop | minutes | recipe |", "|---|---|---|---:|---:|---:|---|"]
    for key, title, file, task in FAST_STAGES:
        d = FAST / key
        if not (d / "log.csv").is_file():
            lines.append(f"| `{file}` | {task} | {title} | not trained | | | |")
            continue
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        rows = list(csv.DictReader((d / "log.csv").open()))
        run = json.loads((d / "run.json").read_text())
        shipped = (CARD.parent / file).is_file()
        use = task if shipped else f"not shipped: see `benchmarks/training/fast/{key}/`"
        lines.append(f"| `{file}` | {use} | {title} | {int(rows[-1]['iteration']):,} x {cfg['train']['batch']} | "
                     f"{cfg['train']['crop']} | {run['minutes']:.0f} | `{run['recipe']}` |")
    run = json.loads((FAST / "cud" / "run.json").read_text()) if (FAST / "cud" / "run.json").is_file() else {}
    lines += ["", f"Hardware: {run.get('hardware', 'see run.json')}. Commands and notes: "
              "`benchmarks/training/fast/*/run.json`. The shipped task stages start from the CUD weights, the continuations from their stage's shipped weights.", "",
              "## Quality against samples seen (validation)", "",
              "Last validation of each stage, mean over 8 pairs per set (IFCNN exposure stacks: darkest and "
              "brightest frame of each of 6 scenes); averaging's level computed in the same run. TNO Nato_camp, "
              "MFFW and the IFCNN stacks are in no evaluation table; Lytro (watched by the multi-focus stage) is: "
              "validation only observes, it selects no checkpoint and stops nothing.", "",
              "| stage | samples seen | set | Qabf | MI | VIF | averaging's Qabf / MI / VIF |",
              "|---|---:|---|---:|---:|---:|---|"]
    for key, title, _, _ in FAST_STAGES:
        lines += _last_validation(FAST / key / "val.csv", title)
    teacher = _last_validation(ADAPT / "val.csv", "paper network, IR-visible weights (teacher candidate)")
    lines += [r for r in teacher if "Nato" in r]
    lines += ["", "**Distillation** from the paper network's heads was built (`adapt.teacher`, `adapt.distill`) "
              "but not used: on the same TNO validation sequence the paper network's IR-visible weights score "
              "below the variant's own (rows above), so they would pull it down; its CUD weights are below "
              "averaging everywhere (its card). Retrain the variant with a teacher when better paper-network "
              "weights land (the GPU kit).", ""]
    for key, title, _, _ in FAST_STAGES:
        if (FAST / key / "val.png").is_file():
            lines.append(f"![{title}](../../../benchmarks/training/fast/{key}/val.png)")
    tno = json.loads((EVAL / "tno.json").read_text())["mean"] if (EVAL / "tno.json").is_file() else {}
    if "defusion_fast" in tno:
        keys = [k for k in PAPER_TNO if k in tno["defusion_fast"]]
        lines += ["", "## How far from the paper and from the Laplacian pyramid (TNO, 25 pairs)", "",
                  "| | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys),
                  "| DeFusion, authors' weights (CDDFuse's table) | " + " | ".join(f"{PAPER_TNO[k]:.2f}" for k in keys)
                  + " |"]
        for m in ("defusion_fast", "defusion", "laplacian", "average"):
            lines.append(f"| {m} (ours, measured) | " + " | ".join(f"{tno[m][k]:.2f}" for k in keys) + " |")
        lines += ["", "Same metric convention as the paper's table; the authors' row is their weights on their "
                  "network, so compare magnitudes, not third decimals."]
    lines += [""] + _targets()
    lines += ["", "## Speed", ""] + _speed() + [""] + _int8() + ["", "## Evaluation", "",
              "`bash benchmarks/evaluate_all.sh` (means; MI, VIF and SSIM summed over both sources; the published "
              "convention). Each set's table, with the paper network and the baselines:", ""]
    for name, title, task in FAST_SETS:
        if not (EVAL / f"{name}.json").is_file():
            continue
        r = json.loads((EVAL / f"{name}.json").read_text())
        if "defusion_fast" not in r["mean"]:
            lines += [f"**{title}**: defusion_fast not evaluated.", ""]
            continue
        table, notes = comparison(name, "defusion_fast")
        lines += [f"**{title}**: `defusion_fast` {'; '.join(notes)}.", "", table, ""]
    CARD_FAST.write_text("\n".join(lines))
    print(f"wrote {CARD_FAST}")


CPU_SETS = [("tno", "TNO", "ir-vis"), ("vifb", "VIFB", "ir-vis"), ("lytro", "Lytro", "multi-focus"),
            ("mefb", "MEFB", "multi-exposure")]
CPU_ROWS = [("defusion_fast@openvino:int8", "OpenVINO int8"), ("defusion_fast@export:bf16", "export bf16")]


def cpu_precision_table() -> list[str]:
    """Reduced precisions against fp32 on the held-out sets (benchmarks/evaluation/cpu_precisions_*.json): the
    bounds of issue #20 are Qabf, MI and VIF within 0.01 / 0.05 / 0.01."""
    rows = ["| set | precision | Qabf (fp32) | MI (fp32) | VIF (fp32) | within 0.01 / 0.05 / 0.01 |",
            "|---|---|---:|---:|---:|---|"]
    for name, title, _ in CPU_SETS:
        path = EVAL / f"cpu_precisions_{name}.json"
        if not path.is_file():
            continue
        mean = json.loads(path.read_text())["mean"]
        ref = mean["defusion_fast"]
        for method, label in CPU_ROWS:
            m = mean[method]
            d = [m[k] - ref[k] for k in ("Qabf", "MI", "VIF")]
            ok = all(abs(x) <= b for x, b in zip(d, (0.01, 0.05, 0.01)))
            rows.append(f"| {title} | {label} | " + " | ".join(
                f"{m[k]:.3f} ({ref[k]:.3f})" for k in ("Qabf", "MI", "VIF")) +
                f" | {'yes' if ok else 'no'} ({', '.join(f'{x:+.3f}' for x in d)}) |")
    return rows


def _replace(text: str, marker: str, rows: list[str]) -> str:
    """Put rows between <!-- MARKER:start --> and <!-- MARKER:end --> (made from a bare <!-- MARKER -->)."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = text.replace(f"<!-- {marker} -->", f"{start}\n{end}")
    if start not in text or end not in text:
        return text
    head, rest = text.split(start, 1)
    return head + start + "\n" + "\n".join(rows) + "\n" + end + rest.split(end, 1)[1]


def readme_table(readme: Path = ROOT / "README.md") -> None:
    """The README's weights table and CPU precision table (between their markers), from the evaluation JSON."""
    rows = ["| set | method | Qabf | MI | VIF | SSIM |", "|---|---|---:|---:|---:|---:|"]
    for name, title in IR_SETS[:3]:
        if not (EVAL / f"{name}.json").is_file():
            continue
        mean = json.loads((EVAL / f"{name}.json").read_text())["mean"]
        for m, label in (("defusion_fast", "defusion_fast (the default: real-time variant)"),
                         ("defusion", "defusion (paper network, IR-visible weights)"),
                         ("defusion-cud", "defusion-cud (paper network, CUD weights)"), ("average", "average"),
                         ("laplacian", "Laplacian pyramid")):
            if m in mean:
                rows.append(f"| {title} | {label} | " + " | ".join(f"{mean[m][k]:.3f}" for k in
                                                              ("Qabf", "MI", "VIF", "SSIM")) + " |")
    text = _replace(readme.read_text(), "weights-table", rows)
    readme.write_text(_replace(text, "cpu-precision-table", cpu_precision_table()))
    print(f"updated the weights and CPU precision tables in {readme}")


if __name__ == "__main__":
    main()
