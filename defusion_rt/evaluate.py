"""`defusion-rt evaluate`: fuse every pair of a test set with each method, score it, tabulate, save.

Methods are the network ("defusion") and the classical engines; `--fused NAME=DIR` adds fused images made by any
other tool. A pair that is unpaired, of mismatched size or unreadable is reported and skipped; the run goes on.
"""
from __future__ import annotations

import csv
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .engines import CLASSICAL, create_engine
from .errors import UserError
from .fusion import Fuser, pair_folders
from .imageio import list_images, read_image, to_uint8, try_read
from .metrics import SUMMED, metric_names, score
from .model import VARIANTS, default_weights, variant_for_weights
from .outputs import written

from .tasks import check_task

CONVENTIONS = ("grey BT.601 luma on 0-255; MI (nats), VIF and SSIM are sums over (A,F)+(B,F) - halve them for "
               "the per-source mean; AG, Qabf and SSIM as the evaluator published with CDDFuse computes them; EN in bits")


@dataclass
class Report:
    task: str
    methods: list[str]
    metrics: list[str]
    per_pair: dict = field(default_factory=dict)   # method -> pair -> metric -> value
    skipped: list = field(default_factory=list)    # {"pair", "method", "reason"}
    conventions: str = CONVENTIONS

    def means(self) -> dict:
        out = {}
        for m in self.methods:
            rows = list(self.per_pair.get(m, {}).values())
            out[m] = {k: float(np.mean([r[k] for r in rows if math.isfinite(r[k])])) if rows else float("nan")
                      for k in self.metrics}
        return out

    def to_json(self, sources: dict) -> dict:
        means = self.means()
        per_source = {m: {k: v / 2 for k, v in vals.items() if k in SUMMED} for m, vals in means.items()}
        return dict(task=self.task, sources=sources, conventions=self.conventions, methods=self.methods,
                    pairs=len(next(iter(self.per_pair.values()), {})), mean=means, mean_per_source=per_source,
                    per_pair=self.per_pair, skipped=self.skipped, machine=platform.node() and platform.platform())


def default_methods(task: str) -> list[str]:
    """What `evaluate` scores unless told: the network every other command uses for `task`, and the baselines."""
    from .model import model_for
    extra = ["mertens"] if task == "multi-exposure" else []
    return [model_for(check_task(task)), "average", "max", "laplacian", *extra]


def _methods(names: list[str], weights: str | None, device: str, precision: str, task: str) -> dict:
    """Network rows are a registered variant's name (its shipped weights for the task; --weights replaces them
    for the variant the file fits) or NAME-cud (its CUD weights, whatever the task); the rest are baselines."""
    fits = variant_for_weights(weights) if weights else None
    fusers = {}
    for name in names:
        net, _, how = name.partition("@")  # NAME@ENGINE:PRECISION, e.g. defusion_fast@openvino:int8
        variant, _, cud = net.partition("-")
        if variant in VARIANTS and cud in ("", "cud"):
            own = weights if (fits == variant and not cud) else None
            w = own or str(default_weights(variant, None if cud else task))
            engine_name, _, own_precision = how.partition(":")
            engine = create_engine(engine_name or "eager", device, own_precision or precision, weights=w,
                                   model_name=variant)
        elif name in CLASSICAL:
            engine = create_engine(name, device)
        else:
            raise UserError(f"unknown method '{name}'; choose from {', '.join(VARIANTS)} (or NAME-cud for its CUD "
                            f"weights, NAME@ENGINE:PRECISION for another engine), {', '.join(CLASSICAL)}")
        fusers[name] = Fuser(engine, task)
    return fusers


def _thumb(img: np.ndarray, height: int, label: str) -> np.ndarray:
    img = to_uint8(img if img.ndim == 3 else np.repeat(img[..., None], 3, 2))
    w = max(1, int(img.shape[1] * height / img.shape[0]))
    t = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)
    cv2.rectangle(t, (0, 0), (min(w, 8 + 9 * len(label)), 20), (0, 0, 0), -1)
    cv2.putText(t, label, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return t


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]], path: Path, height: int = 180) -> Path:
    """One row per pair: sources then each method, labelled; rows padded to the widest."""
    strips = [np.concatenate([_thumb(img, height, label) for label, img in row], axis=1) for row in rows]
    width = max(s.shape[1] for s in strips)
    sheet = np.concatenate([np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]):  # .jpg
        raise UserError(f"cannot write the contact sheet {path}: give a writable path ending in .png or .jpg")
    return path


def _best(report: Report, means: dict) -> dict:
    """The best mean per metric (highest, lowest for flicker; none for a video's plain amount of change)."""
    best = {}
    for k in report.metrics:
        values = [means[m][k] for m in report.methods if math.isfinite(means[m][k])]
        best[k] = None if k in UNRANKED or not values else (min if k in LOWER_IS_BETTER else max)(values)
    return best


def print_table(report: Report, console: Console, title: str) -> None:
    means = report.means()
    table = Table(title=f"{title}\n[dim]{report.conventions}[/dim]")
    table.add_column("method")
    for k in report.metrics:
        table.add_column(k + (" (sum)" if k in SUMMED else ""), justify="right")
    best = _best(report, means)
    for m in report.methods:
        cells = [f"[bold green]{means[m][k]:.3f}[/]" if means[m][k] == best[k] else f"{means[m][k]:.3f}"
                 for k in report.metrics]
        table.add_row(m, *cells)
    console.print(table)


def run_evaluation(task: str, dir_a: str, dir_b: str, methods: list[str], gt: str | None = None,
                   fused: dict[str, str] | None = None, weights: str | None = None, device: str = "auto",
                   precision: str = "fp32", limit: int | None = None, sheet: Path | None = None,
                   sheet_pairs: int = 4, sheet_sources: bool = True) -> Report:
    check_task(task)
    pairs, unpaired = pair_folders(Path(dir_a), Path(dir_b))
    if not pairs:
        raise UserError(f"no file names in common between {dir_a} and {dir_b}; pairs are matched by name")
    pairs = pairs[:limit] if limit else pairs
    gt_files = {p.stem: p for p in list_images(gt)} if gt else {}
    fused_files = {name: {p.stem: p for p in list_images(d)} for name, d in (fused or {}).items()}
    fusers = _methods(methods, weights, device, precision, task)
    all_methods = list(fusers) + list(fused_files)
    report = Report(task, all_methods, metric_names(task, bool(gt)))
    report.skipped += [dict(pair=n, method="*", reason="no partner in the other folder") for n in unpaired]
    sheet_rows = []
    with Progress() as progress:
        bar = progress.add_task(f"evaluating {task}", total=len(pairs))
        for pa, pb in pairs:
            name = pa.stem
            a, b = try_read(pa), try_read(pb)
            ref = try_read(gt_files[name]) if name in gt_files else None
            problem = ("unreadable source image" if a is None or b is None else
                       f"size mismatch {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}"
                       if a.shape != b.shape else "missing or unreadable ground truth" if gt and ref is None else None)
            if problem:
                report.skipped.append(dict(pair=name, method="*", reason=problem))
                progress.console.print(f"skipped {name}: {problem}")
                progress.advance(bar)
                continue
            row = [("A", a), ("B", b)] if sheet_sources else []
            outputs = {m: f(a, b) for m, f in fusers.items()}
            for m, files in fused_files.items():
                img = try_read(files[name]) if name in files else None
                if img is None or img.shape[:2] != a.shape[:2]:
                    report.skipped.append(dict(pair=name, method=m, reason="fused image missing, unreadable or of "
                                                                            "another size"))
                    continue
                outputs[m] = img
            for m, img in outputs.items():
                report.per_pair.setdefault(m, {})[name] = score(a, b, img, task, ref)
                row.append((m, img))
            if len(sheet_rows) < sheet_pairs:
                sheet_rows.append(row)
            progress.advance(bar)
    if sheet and sheet_rows:
        contact_sheet(sheet_rows, Path(sheet))
    return report


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v")
VIDEO_METRICS = ["flicker", "change"]  # metrics/temporal.py; lower flicker is better
LOWER_IS_BETTER = {"flicker"}
VIDEO_CONVENTIONS = ("grey BT.601 luma on 0-255; flicker and change: mean absolute levels per pixel per frame "
                     "step, over the clip's frames (metrics/temporal.py)")
UNRANKED = {"change"}  # how much the fused video moves: context for flicker, neither good nor bad


def video_pairs(a: str, b: str) -> list[tuple[str, str, str]]:
    """(name, A, B): two videos or frame folders (one clip), or two folders of videos paired by name."""
    pa, pb = Path(a), Path(b)
    videos = lambda d: {p.stem: p for p in sorted(d.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}  # noqa: E731
    if pa.is_dir() and pb.is_dir() and (va := videos(pa)):
        vb = videos(pb)
        names = sorted(va.keys() & vb.keys())
        if not names:
            raise UserError(f"no video names in common between {a} and {b}; clips are paired by name")
        return [(n, str(va[n]), str(vb[n])) for n in names]
    return [(pa.stem or pa.name, a, b)]


def run_video_evaluation(task: str, a: str, b: str, methods: list[str], weights: str | None = None,
                         device: str = "auto", precision: str = "fp32", frames: int = 150,
                         steady: bool = True) -> Report:
    """Flicker (metrics/temporal.py) of each method's fused video over the first `frames` frames of every clip;
    `steady`: as the video pipeline makes it by default (fusion/steady.py), else every frame fused on its own."""
    from .fusion.steady import Steady
    from .metrics.temporal import Flicker
    check_task(task)
    clips = video_pairs(a, b)
    fusers = _methods(methods, weights, device, precision, task)
    report = Report(task, list(fusers), VIDEO_METRICS, conventions=VIDEO_CONVENTIONS)
    with Progress() as progress:
        bar = progress.add_task(f"evaluating {task} video", total=len(clips) * frames)
        for name, va, vb in clips:
            meters = {m: Flicker() for m in fusers}
            steadies = {m: Steady(f.grey) if steady else None for m, f in fusers.items()}
            for x, y in clip_frames(va, vb, frames):
                for m, f in fusers.items():
                    out = f(x, y)
                    meters[m].add(x, y, steadied(steadies[m], x, y, out) if steady else out)
                progress.advance(bar)
            for m, meter in meters.items():
                if meter.steps:
                    report.per_pair.setdefault(m, {})[name] = meter.result()
            if not next(iter(meters.values())).steps:
                report.skipped.append(dict(pair=name, method="*", reason="fewer than two frames could be read"))
    return report


def clip_frames(va: str, vb: str, frames: int):
    """The first `frames` frame pairs of two clips as float RGB (0-1), until either ends."""
    from .capture import open_source
    src_a, src_b = open_source(va), open_source(vb)
    rgb = lambda fr: cv2.cvtColor(fr.image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255  # noqa: E731
    try:
        for _ in range(frames):
            fa, fb = src_a.read(), src_b.read()
            if fa is None or fb is None:
                return
            x, y = rgb(fa), rgb(fb)
            if y.shape != x.shape:  # registered sets can differ by a pixel after cropping
                y = cv2.resize(y, x.shape[1::-1], interpolation=cv2.INTER_AREA)
            yield x, y
    finally:
        src_a.close()
        src_b.close()


def steadied(steady, a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Float RGB frames (0-1) through fusion/steady.py as the pipeline runs it, on uint8 BGR frames."""
    u8 = lambda x: np.clip(np.rint(x[..., ::-1] * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return steady(u8(a), u8(b), u8(fused))[..., ::-1].astype(np.float32) / 255


def markdown(report: Report, title: str) -> str:
    """The mean table as Markdown, best value per metric in bold."""
    means = report.means()
    cols = [k + (" (sum)" if k in SUMMED else "") for k in report.metrics]
    lines = [f"**{title}** ({len(next(iter(report.per_pair.values()), {}))} pairs; {report.conventions})", "",
             "| method | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    best = _best(report, means)
    for m in report.methods:
        cells = [f"**{means[m][k]:.3f}**" if means[m][k] == best[k] else f"{means[m][k]:.3f}" for k in report.metrics]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(report: Report, sources: dict, json_path: str | None, csv_path: str | None,
                  md_path: str | None = None, title: str = "") -> None:
    if md_path:
        with written(md_path, "--markdown"):
            Path(md_path).write_text(markdown(report, title or report.task))
    if json_path:
        with written(json_path, "--json"):
            Path(json_path).write_text(json.dumps(report.to_json(sources), indent=1))
    if csv_path:
        with written(csv_path, "--csv"), open(csv_path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["method", "pair", *report.metrics])
            for m in report.methods:
                for pair, vals in report.per_pair.get(m, {}).items():
                    w.writerow([m, pair, *(f"{vals[k]:.6g}" for k in report.metrics)])
                w.writerow([m, "MEAN", *(f"{report.means()[m][k]:.6g}" for k in report.metrics)])
