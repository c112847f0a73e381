"""The GPU kit: what a lent GPU machine runs first, as its single command, from the copied tree.

    # here, on the CPU machine: copy what must travel into runs/gpu_data (ignored by git, ~50 MB)
    python benchmarks/gpu/kit.py prepare --shared ../shared/data
    # on the GPU machine (device tool, carry ["runs/gpu_data"]):
    python benchmarks/gpu/kit.py run --out "$OUT"

`run` measures training images/s for a few batch sizes (bf16 autocast, channels-last), continues the shipped CUD
weights for --train-minutes on the natural photographs, adapts them to IR-visible with fusion losses for
--adapt-minutes, then runs the CUDA benchmark matrix under a hard time guard. Every minute it copies the current
weights, logs and a run record to --out, so a run cut short still returns weights. Nothing is installed or
downloaded. A CPU dry run (tiny sizes, seconds of budget) is part of the test suite, so the kit cannot rot.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the copied tree, uninstalled

from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.config import Settings  # noqa: E402
from defusion_rt.model import create_model, default_weights  # noqa: E402
from defusion_rt.train import train  # noqa: E402
from defusion_rt.train.loop import _amp_dtype  # noqa: E402
from defusion_rt.train.pretext import CUDObjective  # noqa: E402
from defusion_rt.train.validate import load_set  # noqa: E402

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
    """Copies the run's current files to --out every `period` seconds (a cut-short run still returns them)."""

    def __init__(self, pairs: list[tuple[Path, Path]], period: float = 60.0):
        super().__init__(daemon=True)
        self.pairs, self.period, self.done = pairs, period, threading.Event()

    def copy(self) -> None:
        for src, dst in self.pairs:
            if src.is_file():
                tmp = dst.with_suffix(dst.suffix + ".part")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.copy()

    def stop(self) -> None:
        self.done.set()
        self.copy()


def probe_rate(settings: Settings, data: list[str], batch: int, device: torch.device, seconds: float,
               init: Path | None) -> float:
    """Training images/s at `batch` (forward, backward, Adam; data in the main process, already decoded)."""
    settings.train.batch = batch
    torch.set_flush_denormal(True)  # as the trainer does
    objective = CUDObjective(data, settings)
    model = create_model(settings.model.name, weights=init, width=None if init else settings.model.width)
    model = model.to(device).train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    samples = [objective.dataset[i] for i in range(batch)]
    batch_t = {k: torch.stack([torch.as_tensor(s[k]) for s in samples]).to(device) for k in samples[0]}
    amp = _amp_dtype(settings.train.amp, device)
    warmup, steps, t0 = 3, 0, None
    while t0 is None or time.perf_counter() - t0 < seconds:
        a, b = (x.contiguous(memory_format=torch.channels_last) for x in objective.inputs(batch_t))
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = model(a, b, activate=False)
        loss = objective.loss(type(out)(*(t.float() for t in out)), batch_t, 30000)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if warmup:  # warm-up steps (allocator, cuDNN autotuning) are not timed
            warmup -= 1
            t0 = None if warmup else time.perf_counter()
        else:
            steps += 1
    return steps * batch / (time.perf_counter() - t0)


def run(args) -> None:
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    data = Path(args.data)
    record = dict(started=time.strftime("%Y-%m-%dT%H:%M:%S"), machine=machine(), args=vars(args), phases={})

    def save_record() -> None:
        (out / "run.json").write_text(json.dumps(record, indent=1, default=str))

    def left() -> float:
        return args.total_minutes * 60 - (time.perf_counter() - t_start)
    save_record()

    init = None if args.init == "none" else Path(args.init) if args.init else default_weights(args.model)
    settings = Settings()
    settings.model.name, settings.model.width = args.model, args.width
    settings.train.crop, settings.train.amp, settings.train.workers = args.crop, args.amp, args.workers
    lr = args.lr or (2e-3 if args.model == "defusion_fast" else 5e-4)  # the CPU recipes' rates (configs/)
    settings.train.lr, settings.train.warmup, settings.train.log_every = lr, 50, 10
    images = [str(data / "small320")]
    rates = {}
    for b in args.batches:
        rates[b] = round(probe_rate(settings, images, b, device, args.probe_seconds,
                                    init), 2)
        print(f"probe: batch {b}: {rates[b]} images/s", flush=True)
    best = max(rates, key=rates.get)
    record["phases"]["probe"] = dict(images_per_s=rates, batch=best, compile="not tried: its build time "
                                     "would not pay back within a budget of minutes")
    save_record()

    # CUD: continue the shipped weights on the photographs, checkpoints about every 45 s.
    settings.train.batch = best
    settings.train.checkpoint_every = max(10, int(rates[best] / best * 45))
    val = [s for s in (load_set("ir-vis", data / "val_nato/a", data / "val_nato/b", 8),
                       load_set("multi-focus", data / "val_mffw/a", data / "val_mffw/b", 8)) if s.pairs]
    run_dir = work / "cud"
    courier = Courier([(run_dir / "model.pt", out / f"{args.model}.pt"), (run_dir / "log.csv", out / "log.csv"),
                       (run_dir / "val.csv", out / "val.csv")], args.copy_every)
    courier.start()
    minutes = min(args.train_minutes, max(0.1, (left() - 60 * (args.adapt_minutes + args.bench_minutes)) / 60))
    t0 = time.perf_counter()
    train(images, settings, run_dir, minutes=minutes, init=init, validation=val,
          val_every=args.val_every)
    courier.stop()
    record["phases"]["cud"] = dict(minutes=round((time.perf_counter() - t0) / 60, 2), batch=best,
                                   iterations=settings.train.iterations, crop=args.crop)
    save_record()

    # IR-visible adaptation of the new CUD weights with fusion losses.
    if args.adapt_minutes > 0 and (data / "roadscene/a").is_dir():
        adapt_dir = work / "adapt"
        s2 = Settings()
        s2.model.name = args.model
        s2.train.crop, s2.train.batch, s2.train.lr, s2.train.warmup = args.crop, best, args.adapt_lr, 20
        s2.train.workers, s2.train.log_every, s2.train.amp = args.workers, 10, args.amp
        s2.train.checkpoint_every = settings.train.checkpoint_every
        s2.adapt.gradient = args.adapt_gradient
        courier = Courier([(adapt_dir / "model.pt", out / f"{args.model}_ir_vis.pt"),
                           (adapt_dir / "log.csv", out / "adapt_log.csv")], args.copy_every)
        courier.start()
        t0 = time.perf_counter()
        minutes = min(args.adapt_minutes, max(0.1, (left() - 60 * args.bench_minutes) / 60))
        train(None, s2, adapt_dir, minutes=minutes, init=run_dir / "model.pt",
              adapt=dict(task="ir-vis", a=[str(data / "roadscene/a")], b=[str(data / "roadscene/b")]))
        courier.stop()
        record["phases"]["adapt"] = dict(minutes=round((time.perf_counter() - t0) / 60, 2),
                                         iterations=s2.train.iterations)
        save_record()

    # The benchmark matrix, in a child process with a hard time limit; its JSON is rewritten after every record.
    guard = max(10.0, left() - 15)
    cmd = [sys.executable, "-m", "defusion_rt", "bench", "--device", str(device), "--model", args.model,
           "--engines", args.engines,
           "--precisions", args.precisions, "--sizes", args.sizes, "--batch", args.bench_batches,
           "--budget", str(args.bench_budget), "--weights", str(run_dir / "model.pt"),
           "--json", str(out / "bench.json"), "--out-dir", str(work / "bench")]
    clip = data / "clip"
    if (clip / "ir.mp4").is_file():
        cmd += ["--e2e", f"{clip / 'ir.mp4'},{clip / 'vis.mp4'}", "--e2e-frames", str(args.e2e_frames)]
    t0 = time.perf_counter()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, timeout=guard).returncode
    except subprocess.TimeoutExpired:
        rc = "timed out (partial results kept)"
    record["phases"]["bench"] = dict(seconds=round(time.perf_counter() - t0, 1), guard_s=round(guard), rc=rc)
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    save_record()
    print(f"kit done in {(time.perf_counter() - t_start) / 60:.1f} min; files in {out}: "
          + ", ".join(p.name for p in sorted(out.iterdir())), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="copy the data that travels into runs/gpu_data")
    pp.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    pp.add_argument("--roadscene-pairs", type=int, default=80)
    r = sub.add_parser("run", help="train, adapt and benchmark (the GPU machine's single command)")
    r.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_out"))
    r.add_argument("--work", default="/tmp/defusion_kit", help="run folders (checkpoints stay here)")
    r.add_argument("--data", default=str(DATA))
    r.add_argument("--device", default="auto")
    r.add_argument("--model", default="defusion_fast", choices=["defusion_fast", "defusion"],
                   help="the variant to train: the default one everywhere (defusion_fast) or the paper network")
    r.add_argument("--init", help="weights to continue (default: the shipped ones; 'none': from scratch)")
    r.add_argument("--width", type=float, default=1.0)
    r.add_argument("--total-minutes", type=float, default=9.3, help="hard budget of the whole kit")
    r.add_argument("--train-minutes", type=float, default=5.5)
    r.add_argument("--adapt-minutes", type=float, default=1.0)
    r.add_argument("--bench-minutes", type=float, default=2.3, help="reserved for the benchmark")
    r.add_argument("--probe-seconds", type=float, default=5.0)
    r.add_argument("--batches", type=lambda t: [int(x) for x in t.split(",")], default=[8, 16, 32])
    r.add_argument("--crop", type=int, default=256)
    r.add_argument("--amp", default="auto", help="auto (bf16 where supported) | bf16 | fp16 | off")
    r.add_argument("--lr", type=float, help="default: 2e-3 for defusion_fast, 5e-4 for defusion")
    r.add_argument("--adapt-lr", type=float, default=2e-4)
    r.add_argument("--adapt-gradient", type=float, default=0.25)
    r.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    r.add_argument("--val-every", type=float, default=1.0)
    r.add_argument("--copy-every", type=float, default=60.0)
    r.add_argument("--engines", default="eager,compile:fp16,torchscript:fp16,export:fp16")
    r.add_argument("--precisions", default="fp32,fp16,bf16")
    r.add_argument("--sizes", default="640x480,1280x720")
    r.add_argument("--bench-batches", default="1,8")
    r.add_argument("--bench-budget", type=float, default=2.0)
    r.add_argument("--e2e-frames", type=int, default=120)
    args = p.parse_args()
    if args.cmd == "prepare":
        prepare(Path(args.shared), args.roadscene_pairs)
    else:
        run(args)


if __name__ == "__main__":
    main()
