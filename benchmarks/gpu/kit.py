"""The GPU kit: what a lent GPU machine runs first, as its single command, from the copied tree.

    # here, on the CPU machine: copy what must travel into runs/gpu_data (ignored by git, ~50 MB)
    python benchmarks/gpu/kit.py prepare --shared ../shared/data
    # on the GPU machine (device tool, carry ["runs/gpu_data"]), at most 9 minutes:
    python benchmarks/gpu/kit.py run --out "$OUT"

`run`, in order, each phase under the kit's hard budget:
1. benchmarks first, so every GPU run leaves them: both networks at 640x480 batch 1 (`--bench-engine`, compile
   fp16), the split-attention forms side by side (benchmarks/split_attention.py) and the paper network's operator
   profile (text and JSON);
2. a training probe (probe.py): images/s per batch, compiled or not (build time and speed-up; compile where it
   pays back in the budget) and the data loader's own images/s with the kit's workers;
3. CUD training of the paper network (`--model`) from the shipped weights for most of what is left, validation
   every minute keeping the best weights;
4. a short IR-visible adaptation of those with the CPU recipe's settings (configs/adapt-ir-vis.yaml);
5. the adapted and the shipped IR-visible weights scored on the validation pairs: the adapted ones come back
   only where they beat the shipped ones on Qabf, MI and VIF.
Every --copy-every seconds the weights go to --out and every log and JSON into one archive there,
kit_results.tar.gz (a device call returns at most 8 files), so a run cut short still returns them. Nothing is
installed or downloaded. A CPU dry run (tiny sizes, seconds of budget) is part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the copied tree, uninstalled

from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.config import Settings, load_settings  # noqa: E402
from defusion_rt.model import create_model, default_weights  # noqa: E402
from defusion_rt.train import train  # noqa: E402
from defusion_rt.train.validate import load_set  # noqa: E402
from probe import loader_rate, probe_training  # noqa: E402  (beside this file)

DATA = ROOT / "runs" / "gpu_data"


# ---------------------------------------------------------------- prepare (CPU machine)
def _copy_pairs(src_a: Path, src_b: Path, dst: Path, n: int | None) -> int:
    names = sorted(p.name for p in src_a.iterdir() if (src_b / p.name).is_file())
    if n:
        names = [names[int(i)] for i in np.linspace(0, len(names) - 1, min(n, len(names)))]
    for side, src in (("a", src_a), ("b", src_b)):
        (dst / side).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy2(src / name, dst / side / name)
    return len(names)


def _clip(src: Path, dst: Path, frames: int) -> None:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30
    out = None
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        if out is None:
            out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        out.write(frame)
    cap.release()
    if out is not None:
        out.release()


def _photos(src: Path, dst: Path, short_side: int, quality: int) -> None:
    """small320 re-encoded smaller (short side 256 still fits 256x256 crops), to fit the 64 MiB that travel."""
    dst.mkdir(parents=True)
    for p in sorted(src.glob("*.jpg")):
        img = cv2.imread(str(p))
        s = short_side / min(img.shape[:2])
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(dst / p.name), img, [cv2.IMWRITE_JPEG_QUALITY, quality])


def prepare(shared: Path, roadscene_pairs: int) -> None:
    if DATA.exists():
        shutil.rmtree(DATA)
    _photos(shared / "train_natural" / "small320", DATA / "small320", 256, 80)
    rs = _copy_pairs(shared / "ir_vis/RoadScene/ir", shared / "ir_vis/RoadScene/vis", DATA / "roadscene",
                     roadscene_pairs)
    _copy_pairs(shared / "ir_vis_video/TNO_Nato_camp/ir", shared / "ir_vis_video/TNO_Nato_camp/vis",
                DATA / "val_nato", 8)
    _copy_pairs(shared / "multi_focus/MFFW/a", shared / "multi_focus/MFFW/b", DATA / "val_mffw", 8)
    clip = sorted((shared / "ir_vis_video/M3SVD/ir").glob("*.mp4"))[0]
    (DATA / "clip").mkdir()
    for side in ("ir", "vis"):
        _clip(clip.parent.parent / side / clip.name, DATA / "clip" / f"{side}.mp4", 120)
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) / 2 ** 20
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tree = sum((ROOT / f).stat().st_size for f in tracked.decode().split("\0") if f and (ROOT / f).is_file()) / 2 ** 20
    print(f"prepared {DATA} ({size:.1f} MiB: small320 at 256 px, {rs} RoadScene pairs, validation pairs, a 120-frame "
          f"clip); with the tracked tree ({tree:.1f} MiB) {size + tree:.1f} MiB travel (limit 64); run the kit "
          f"with carry [\"runs/gpu_data\"]")
    if size + tree > 64:
        raise SystemExit("over the 64 MiB a device call may carry: lower --roadscene-pairs or the photo quality")


# ---------------------------------------------------------------- run (GPU machine)
class Courier(threading.Thread):
    """Every `period` s: copies the weights to --out and packs the logs and JSONs into one archive there (a device
    call returns at most 8 files, and a run cut short still returns what it had)."""

    def __init__(self, out: Path, work: Path, period: float):
        super().__init__(daemon=True)
        self.out, self.work, self.period, self.done = out, work, period, threading.Event()
        self.weights: dict[Path, str] = {}  # source file -> name in --out
        self.lock = threading.Lock()

    def keep(self, src: Path, name: str) -> None:
        with self.lock:
            self.weights[src] = name

    def copy(self) -> None:
        with self.lock:
            for src, name in self.weights.items():
                if src.is_file():
                    shutil.copyfile(src, self.out / (name + ".part"))
                    os.replace(self.out / (name + ".part"), self.out / name)
            tmp = self.out / "kit_results.tar.gz.part"
            with tarfile.open(tmp, "w:gz") as tar:
                for f in sorted(self.work.rglob("*")):
                    if f.is_file() and f.suffix in (".csv", ".json", ".txt", ".png", ".log"):
                        tar.add(f, arcname=str(f.relative_to(self.work)))
            os.replace(tmp, self.out / "kit_results.tar.gz")

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.copy()

    def stop(self) -> None:
        self.done.set()
        self.copy()


def _child(cmd: list[str], log: Path, timeout: float) -> int | str:
    """A benchmark in a child process with a hard time limit; its output goes to `log` (packed with the rest)."""
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            return subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=max(5.0, timeout)).returncode
        except subprocess.TimeoutExpired:
            return "timed out (partial results kept)"


def bench_phase(args, device: torch.device, work: Path, seconds: float) -> dict:
    """Both networks at 640x480 batch 1 in the kit's engine, the split-attention forms side by side, and the
    paper network's operator profile (text and JSON): every GPU run leaves these, whatever else it does."""
    t_end = time.perf_counter() + seconds
    engine, precision = args.bench_engine.split(":")
    bench = work / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    log, rcs = bench / "bench_console.log", {}
    mod = [sys.executable, "-m", "defusion_rt", "bench", "--device", device.type, "--sizes", args.bench_size]
    rcs["split_attention"] = _child(
        [sys.executable, str(ROOT / "benchmarks/split_attention.py"), "--device", device.type, "--size", args.bench_size,
         "--engines", args.forms_engine, "--rounds", "5", "--reps", "3", "--json", str(bench / "split_attention.json")],
        log, t_end - time.perf_counter())
    for model in ("defusion_fast", "defusion"):
        rcs[model] = _child(mod + ["--model", model, "--engines", args.bench_engine, "--precisions", precision,
                                   "--batch", "1", "--budget", str(args.bench_budget), "--json",
                                   str(bench / f"bench_{model}.json"), "--out-dir", str(bench)],
                            log, t_end - time.perf_counter())
    rcs["profile"] = _child(mod + ["--model", "defusion", "--profile", args.bench_engine, "--out-dir", str(bench)],
                            log, t_end - time.perf_counter())
    return dict(rc=rcs, seconds=round(seconds - (t_end - time.perf_counter()), 1))


def _scores(weights: Path, model: str, pairs: list, device: torch.device) -> dict:
    """Mean Qabf, MI and VIF of `weights` on the validation pairs (IR-visible)."""
    from defusion_rt.engines import EagerEngine
    from defusion_rt.fusion import Fuser
    from defusion_rt.metrics import score
    fuser = Fuser(EagerEngine(create_model(model, weights=weights), device), "ir-vis")
    rows = [score(a, b, fuser(a, b), "ir-vis") for a, b in pairs]
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("Qabf", "MI", "VIF")}


def run(args) -> None:
    t_start = time.perf_counter()
    out, work, data = Path(args.out), Path(args.work), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    record = dict(started=time.strftime("%Y-%m-%dT%H:%M:%S"), machine=machine(), args=vars(args), phases={})

    def save_record() -> None:
        (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
        (work / "run.json").write_text(json.dumps(record, indent=1, default=str))

    def left() -> float:
        return args.total_minutes * 60 - (time.perf_counter() - t_start)
    save_record()
    courier = Courier(out, work, args.copy_every)
    courier.start()

    # 1. Benchmarks and a profile first: a run cut short by anything later still leaves them.
    record["phases"]["bench"] = bench_phase(args, device, work, min(args.bench_minutes * 60, left() - 60))
    save_record()

    # 2. Probe: batch, compile or not, and whether the data path keeps up.
    init = None if args.init == "none" else Path(args.init) if args.init else default_weights(args.model)
    settings = Settings()
    settings.model.name, settings.model.width = args.model, args.width
    settings.train.crop, settings.train.amp, settings.train.workers = args.crop, args.amp, args.workers
    lr = args.lr or (2e-3 if args.model == "defusion_fast" else 5e-4)  # the CPU recipes' rates (configs/)
    settings.train.lr, settings.train.warmup, settings.train.log_every = lr, 50, args.log_every
    images = [str(data / "small320")]
    train_s = 60 * min(args.train_minutes, max(0.1, left() / 60 - args.adapt_minutes - args.eval_minutes))
    probe = probe_training(settings, images, args.batches, device, args.probe_seconds, init, args.probe_compile,
                           train_s)
    probe["loader_images_per_s"] = round(loader_rate(settings, images, probe["batch"], args.workers,
                                                     args.probe_seconds), 1)
    probe["loader_workers"] = args.workers
    print(f"probe: data path {probe['loader_images_per_s']} images/s with {args.workers} workers", flush=True)
    record["phases"]["probe"] = probe
    save_record()

    # 3. CUD training for most of what is left, validation keeping the best weights.
    best = probe["batch"]
    settings.train.batch, settings.train.compile = best, probe["compile"]
    rate = probe.get("compiled_images_per_s") if probe["compile"] else probe["images_per_s"][best]
    settings.train.checkpoint_every = max(10, int(rate / best * 45))
    val = [s for s in (load_set("ir-vis", data / "val_nato/a", data / "val_nato/b", 8),
                       load_set("multi-focus", data / "val_mffw/a", data / "val_mffw/b", 8)) if s.pairs]
    cud_dir = work / "cud"
    courier.keep(cud_dir / "best.pt", f"{args.model}.pt")
    minutes = min(args.train_minutes, max(0.1, left() / 60 - args.adapt_minutes - args.eval_minutes))
    t0 = time.perf_counter()
    train(images, settings, cud_dir, minutes=minutes, init=init, validation=val, val_every=args.val_every)
    record["phases"]["cud"] = dict(minutes=round((time.perf_counter() - t0) / 60, 2), batch=best,
                                   iterations=settings.train.iterations, crop=args.crop, compile=settings.train.compile)
    save_record()

    # 4. IR-visible adaptation of the best CUD weights with the CPU recipe's settings.
    adapt_dir = work / "adapt"
    if args.adapt_minutes > 0 and (data / "roadscene/a").is_dir():
        recipe = "adapt-ir-vis.yaml" if args.model == "defusion" else "fast-adapt-ir-vis.yaml"
        s2 = load_settings(ROOT / "configs" / recipe)
        s2.model.name = args.model
        s2.train.batch, s2.train.workers, s2.train.amp = best, args.workers, args.amp
        s2.train.crop = min(s2.train.crop, args.crop)  # the recipe's, unless the dry run's tiny pairs need less
        s2.train.log_every, s2.train.checkpoint_every = args.log_every, settings.train.checkpoint_every
        t0 = time.perf_counter()
        minutes = min(args.adapt_minutes, max(0.1, left() / 60 - args.eval_minutes))
        train(None, s2, adapt_dir, minutes=minutes, init=cud_dir / "best.pt",
              adapt=dict(task="ir-vis", a=[str(data / "roadscene/a")], b=[str(data / "roadscene/b")]))
        record["phases"]["adapt"] = dict(minutes=round((time.perf_counter() - t0) / 60, 2), recipe=recipe,
                                         iterations=s2.train.iterations, batch=best)
        save_record()

    # 5. Keep the adapted weights only where they beat the shipped ones on the validation pairs.
    if (adapt_dir / "model.pt").is_file() and val and val[0].task == "ir-vis":
        shipped = default_weights(args.model, task="ir-vis")
        new = _scores(adapt_dir / "model.pt", args.model, val[0].pairs, device)
        old = _scores(shipped, args.model, val[0].pairs, device) if shipped and shipped.is_file() else None
        better = old is None or all(new[k] > old[k] for k in ("Qabf", "MI", "VIF"))
        if better:
            courier.keep(adapt_dir / "model.pt", f"{args.model}_ir_vis.pt")
        record["phases"]["evaluate"] = dict(set=val[0].name, adapted=new, shipped=old, kept=better,
                                            shipped_file=str(shipped) if shipped else None)
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    save_record()
    courier.stop()
    print(f"kit done in {(time.perf_counter() - t_start) / 60:.1f} min; files in {out}: "
          + ", ".join(p.name for p in sorted(out.iterdir())), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="copy the data that travels into runs/gpu_data")
    pp.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    pp.add_argument("--roadscene-pairs", type=int, default=80)
    r = sub.add_parser("run", help="benchmark, train, adapt and evaluate (the GPU machine's single command)")
    r.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_out"))
    r.add_argument("--work", default="/tmp/defusion_kit", help="run folders (checkpoints stay here)")
    r.add_argument("--data", default=str(DATA))
    r.add_argument("--device", default="auto")
    r.add_argument("--model", default="defusion", choices=["defusion_fast", "defusion"],
                   help="the variant to train: the paper network (default) or the real-time variant")
    r.add_argument("--init", help="weights to continue (default: the shipped ones; 'none': from scratch)")
    r.add_argument("--width", type=float, default=1.0)
    r.add_argument("--total-minutes", type=float, default=8.8, help="hard budget of the whole kit")
    r.add_argument("--bench-minutes", type=float, default=2.2, help="benchmarks and profile, first")
    r.add_argument("--train-minutes", type=float, default=30.0, help="CUD training: at most this, else what is left")
    r.add_argument("--adapt-minutes", type=float, default=1.0)
    r.add_argument("--eval-minutes", type=float, default=0.4, help="reserved for the final evaluation")
    r.add_argument("--probe-seconds", type=float, default=4.0)
    r.add_argument("--probe-compile", action=argparse.BooleanOptionalAction, default=True,
                   help="time the compiled training step too, and train compiled where its build pays back")
    r.add_argument("--batches", type=lambda t: [int(x) for x in t.split(",")], default=[32, 64])
    r.add_argument("--crop", type=int, default=256)
    r.add_argument("--amp", default="auto", help="auto (bf16 where supported) | bf16 | fp16 | off")
    r.add_argument("--lr", type=float, help="default: 2e-3 for defusion_fast, 5e-4 for defusion")
    r.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    r.add_argument("--log-every", type=int, default=20, help="training steps between loss reads (host syncs)")
    r.add_argument("--val-every", type=float, default=1.0)
    r.add_argument("--copy-every", type=float, default=30.0)
    r.add_argument("--bench-engine", default="compile:fp16", help="ENGINE:PRECISION of both networks' benchmark")
    r.add_argument("--forms-engine", default="eager:fp16", help="ENGINE:PRECISION of the split-attention forms")
    r.add_argument("--bench-size", default="640x480")
    r.add_argument("--bench-budget", type=float, default=2.0)
    args = p.parse_args()
    if args.cmd == "prepare":
        prepare(Path(args.shared), args.roadscene_pairs)
    else:
        run(args)


if __name__ == "__main__":
    main()
