"""Quality during training: the current weights fuse a small fixed validation set every few minutes.

Qabf, MI, VIF and SSIM (the table metrics, see metrics/; MEF-SSIM too for multi-exposure) of the network and, once,
of plain averaging, so the log shows how quality grows with samples seen and what more compute would buy. best.pt
keeps the weights with the best mean of each set's primary metric (PRIMARY). Keep the sets out of published tables.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..engines import EagerEngine, create_engine
from ..fusion import Fuser, pair_folders
from ..imageio import read_image
from ..metrics import score
from ..plot import line_plot
from ..tasks import check_task

METRICS = ("Qabf", "MI", "VIF", "SSIM", "MEF-SSIM")
FIELDS = ["iteration", "seen", "minutes", "set", "method", *METRICS]
PRIMARY = {"multi-exposure": "MEF-SSIM"}  # the metric each task is judged by (issue #22's table); else Qabf


def primary(task: str) -> str:
    return PRIMARY.get(task, "Qabf")


@dataclass
class ValSet:
    name: str
    task: str
    pairs: list  # (a, b) float RGB images


def load_set(task: str, dir_a: str, dir_b: str, n: int = 8, max_side: int = 400) -> ValSet:
    """n pairs spread evenly over the folder (frames of a sequence: evenly in time), long side <= max_side."""
    found, _ = pair_folders(Path(dir_a), Path(dir_b))
    picks = [found[int(i)] for i in np.linspace(0, len(found) - 1, min(n, len(found)))] if found else []
    pairs = []
    for pa, pb in picks:
        a, b = read_image(pa), read_image(pb)
        s = max_side / max(a.shape[:2])
        if s < 1:
            a = cv2.resize(a, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        pairs.append((a, b))
    return ValSet(f"{Path(dir_a).parent.name}", check_task(task), pairs)


def _mean_scores(fuser: Fuser, vs: ValSet) -> dict:
    rows = [score(a, b, fuser(a, b), vs.task) for a, b in vs.pairs]
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS if k in rows[0]}


class Validator:
    """Scores a model on the sets; appends rows to val.csv and redraws val.png after each call. `keep_best(iteration,
    value)` is called whenever the mean of the sets' primary metrics beats every earlier score of this run (best.pt)."""

    def __init__(self, sets: list[ValSet], out: Path, resume: bool = False, start: int = 0, keep_best=None):
        self.keep_best, self.best = keep_best, float("-inf")
        self.sets = [s for s in sets if s.pairs]
        self.path, self.png = out / "val.csv", out / "val.png"
        rows = list(csv.DictReader(self.path.open())) if resume and self.path.is_file() else []
        with self.path.open("w", newline="") as fh:  # a new run starts a new curve; a resumed one keeps its own
            w = csv.DictWriter(fh, FIELDS)
            w.writeheader()
            w.writerows(r for r in rows if int(r["iteration"]) <= start)
        self.baseline = {s.name: _mean_scores(Fuser(create_engine("average", "cpu"), s.task), s) for s in self.sets}

    def __call__(self, model, iteration: int, seen: int, minutes: float) -> list[dict]:
        was_training = model.training
        engine = EagerEngine(model, next(model.parameters()).device)  # a copy, in eval mode
        rows = []
        for s in self.sets:
            base = dict(iteration=iteration, seen=seen, minutes=round(minutes, 2), set=s.name)
            rows.append(dict(base, method="model", **_mean_scores(Fuser(engine, s.task), s)))
            rows.append(dict(base, method="average", **self.baseline[s.name]))
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, FIELDS).writerows(rows)
        model.train(was_training)
        tasks = {s.name: s.task for s in self.sets}
        value = float(np.mean([r[primary(tasks[r["set"]])] for r in rows if r["method"] == "model"]))
        if self.keep_best and value > self.best:
            self.best = value
            self.keep_best(iteration, value)
        self.plot()
        return rows

    def plot(self) -> None:
        plot_quality(self.path, self.png)


def plot_quality(csv_path: Path, png: Path) -> Path | None:
    """Qabf and MI of the model against samples seen, with averaging's level, one line per set."""
    rows = list(csv.DictReader(Path(csv_path).open()))
    if not rows:
        return None
    series = {}
    for r in rows:
        for m in ("Qabf", "MI"):
            key = f"{r['set']} {m}" + (" (avg)" if r["method"] == "average" else "")
            xs, ys = series.setdefault(key, ([], []))
            xs.append(int(r["seen"]))
            ys.append(float(r[m]))
    return line_plot(series, png, "validation quality against samples seen", "samples seen", "metric", log_y=True)
