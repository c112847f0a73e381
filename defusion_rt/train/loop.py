"""`defusion-rt train`: CUD self-supervised training, one file top to bottom (nanoGPT-style).

Checkpoints hold model, optimiser, scheduler, iteration and the resolved settings; a run stopped by Ctrl-C or
SIGTERM saves one before it exits and `--resume` continues exactly (data are a function of the iteration).
Several GPUs or hosts: launch with `torchrun`; DistributedDataParallel averages gradients.
"""
from __future__ import annotations

import csv
import os
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import Settings, build
from ..errors import UserError
from ..model import create_model, export_weights
from ..plot import line_plot
from .data import CUDDataset, RangeSampler, batch_targets
from .loss import LossSchedule, cud_loss

LOG_FIELDS = ["iteration", "lr", "total", "common", "unique_a", "unique_b", "recon", "alpha", "beta",
              "images_per_s", "skipped"]


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off":
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    cpu_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return torch.bfloat16 if cpu_bf16 else None


def _ignore_signals(_worker_id: int) -> None:
    # The main process handles Ctrl-C and SIGTERM (also when sent to the whole process group), saves a checkpoint
    # and stops the workers itself; a worker dying first would crash the run without one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step, so a checkpoint is always written."""

    def __init__(self):
        self.set = False
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, _frame):
        self.set = True

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write never leaves a truncated checkpoint


def _replicas_in_sync(model: torch.nn.Module) -> bool:
    """All ranks hold the same weights (compared by float64 sums; trivially true on one process)."""
    if not dist.is_initialized():
        return True
    sums = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()]) for p in model.parameters()])
    sums = sums.to(next(model.parameters()).device)
    gathered = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, sums)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def _plot_log(log_path: Path, png: Path) -> None:
    rows = list(csv.DictReader(log_path.open()))
    if not rows:
        return
    its = [int(r["iteration"]) for r in rows]
    series = {k: (its, [float(r[k]) for r in rows]) for k in ["total", "common", "unique_a", "unique_b", "recon"]}
    line_plot(series, png, "CUD training loss (batch-summed L1)", "iteration", "loss", log_y=True)


def train(data: str, settings: Settings, out: Path, resume: bool = False, iterations: int | None = None,
          stop_after: int | None = None) -> Path:
    """Train; `stop_after` ends this invocation after that many steps with a checkpoint (resume later)."""
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise UserError(f"nothing to resume: {ckpt_path} does not exist; drop --resume to start a new run")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        settings = build(Settings, state["settings"])  # the run's own settings, not the defaults
    if iterations:
        settings.train.iterations = iterations
    tr = settings.train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    lead = rank == 0

    dataset = CUDDataset(data, settings)
    torch.manual_seed(tr.seed)
    width = settings.model.width if settings.model.width != 1.0 else None
    model = create_model(settings.model.name, width=width).to(device).train()
    if tr.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=tr.lr, betas=(0.9, 0.999))
    milestones = [int(f * tr.iterations) for f in tr.lr_milestones]

    def lr_factor(step: int) -> float:  # linear warm-up, then x gamma at each milestone
        return min(1.0, (step + 1) / tr.warmup if tr.warmup else 1.0) * tr.lr_gamma ** sum(step >= m for m in milestones)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    start = 0
    if state is not None:
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])  # the factor is recomputed: --iterations may stretch the run
        start = state["iteration"]
    net = DistributedDataParallel(model) if world > 1 else model
    schedule = LossSchedule(settings.loss, tr.schedule_scale)
    amp = _amp_dtype(tr.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    loader = DataLoader(dataset, batch_size=tr.batch, sampler=RangeSampler(start, tr.iterations, tr.batch, rank, world),
                        num_workers=tr.workers, worker_init_fn=_ignore_signals, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=False)

    out.mkdir(parents=True, exist_ok=True)
    if lead:
        (out / "config.yaml").write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))
    log_path = out / "log.csv"
    new_log = not (resume and log_path.is_file())
    if lead and not new_log:  # rows logged after the checkpoint were lost with the crash: drop them
        rows = [r for r in csv.DictReader(log_path.open()) if int(r["iteration"]) <= start]
        with log_path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
    log_file = log_path.open("w" if new_log else "a", newline="") if lead else None
    writer = csv.DictWriter(log_file, LOG_FIELDS) if lead else None
    if lead and new_log:
        writer.writeheader()

    def checkpoint(it: int) -> None:
        in_sync = _replicas_in_sync(model)
        if not in_sync:
            raise RuntimeError("DDP replicas diverged: parameters differ between ranks")
        if lead:
            _save_atomic(dict(state_dict=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                              iteration=it, settings=settings.to_dict(), replicas_in_sync=in_sync, world_size=world),
                         ckpt_path)
            export_weights(model, out / "model.pt", meta=dict(iteration=it, crop=tr.crop, data=str(data)))

    stop = _StopFlag()
    it, skipped, t0, seen = start, 0, time.perf_counter(), 0
    cols = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn()]
    progress = Progress(*cols, disable=not lead)
    try:
        with progress:
            task = progress.add_task("train", total=tr.iterations, completed=start, info="")
            for batch in loader:
                batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
                skipped += int(batch["skipped"].sum())
                a, b = batch["view_a"], batch["view_b"]
                if tr.channels_last:
                    a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
                ctx = torch.autocast(device.type, dtype=amp) if amp else nullcontext()
                with ctx:
                    out_ = net(a, b, activate=False)  # losses on pre-ReLU outputs (see DeFusion.forward)
                terms = cud_loss(type(out_)(*(t.float() for t in out_)), batch_targets(batch), batch["clean"],
                                 it, schedule)
                opt.zero_grad(set_to_none=True)
                scaler.scale(terms["total"]).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                it += 1
                seen += tr.batch * world
                if lead and (it % tr.log_every == 0 or it == tr.iterations):
                    vals = {k: float(v.detach()) for k, v in terms.items()}
                    rate = seen / (time.perf_counter() - t0)
                    writer.writerow(dict(iteration=it, lr=sched.get_last_lr()[0], **vals, alpha=schedule.alpha(it) or 0,
                                         beta=schedule.beta(it), images_per_s=round(rate, 3), skipped=skipped))
                    log_file.flush()
                    progress.update(task, completed=it, info=(
                        f"loss {vals['total']:.4f} c {vals['common']:.3f} u {vals['unique_a']:.3f}/"
                        f"{vals['unique_b']:.3f} r {vals['recon']:.3f} | {rate:.1f} img/s | skipped {skipped}"))
                if stop_after and it - start >= stop_after:
                    stop.set = True
                if it % tr.checkpoint_every == 0 or stop.set:
                    checkpoint(it)
                if stop.set:
                    break
            else:
                if it % tr.checkpoint_every:
                    checkpoint(it)
    finally:
        stop.restore()
        if log_file:
            log_file.close()
        if world > 1:
            dist.destroy_process_group()
    if lead:
        _plot_log(log_path, out / "loss.png")
        state = "stopped" if stop.set else "finished"
        print(f"{state} at iteration {it}: checkpoint {ckpt_path}, weights {out / 'model.pt'}, "
              f"log {log_path}, {skipped} unreadable images skipped")
    return out
