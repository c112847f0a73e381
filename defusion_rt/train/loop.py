"""`defusion-rt train`: one loop for every objective, top to bottom (nanoGPT-style).

The objective is CUD self-supervision on folders of images (pretext.py) or fusion-loss adaptation on image pairs
(adapt.py); both give a dataset, the network's inputs and the loss terms. Checkpoints hold model, optimiser,
scheduler, iteration and the resolved settings; a run stopped by Ctrl-C or SIGTERM saves one before it exits and
`--resume` continues exactly (data are a function of the iteration). `--minutes` turns a wall-clock budget into a
number of iterations measured after a warm-up, and places the learning-rate steps and loss milestones in it.
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
from ..model.registry import HEADS
from ..plot import line_plot
from .adapt import FusionObjective
from .synthetic import MAKERS, SyntheticPairObjective
from .data import RangeSampler
from .pretext import CUDObjective
from .validate import Validator

PLAN_AFTER = 20           # --minutes: steps timed before the first estimate of the run's length
OPEN_ENDED = 10 ** 9      # sampler length while the run's length is still an estimate


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


def _plot_log(log_path: Path, png: Path, terms: tuple[str, ...], title: str) -> None:
    rows = list(csv.DictReader(log_path.open()))
    if not rows:
        return
    its = [int(r["iteration"]) for r in rows]
    series = {k: (its, [float(r[k]) for r in rows]) for k in ["total", *terms]}
    line_plot(series, png, title, "iteration", "loss", log_y=True)


def _resumed_settings(state: dict, given: Settings | None) -> Settings:
    """The checkpoint's settings; a --config that differs from them (other than the run length) is an error."""
    saved = build(Settings, state["settings"])
    if given is not None:
        flat = lambda d, p="": {f"{p}{k}": v for key, sub in d.items()  # noqa: E731
                                for k, v in (flat(sub, f"{key}.").items() if isinstance(sub, dict) else [(key, sub)])}
        a, b = flat(saved.to_dict()), flat(given.to_dict())
        differ = [k for k in a if a[k] != b.get(k) and k not in ("train.iterations", "train.schedule_scale")]
        if differ:
            raise UserError(f"--config differs from the run being resumed in {', '.join(differ[:4])}"
                            f"{' ...' if len(differ) > 4 else ''}; drop --config to resume with the run's own "
                            "settings, or start a new run with --out")
    return saved


def make_objective(data: list[str] | None, settings: Settings, adapt: dict | None):
    if adapt and adapt["task"] in MAKERS:  # pairs are made from photographs (train/synthetic.py)
        if not data:
            raise UserError(f"--adapt {adapt['task']} makes its pairs from photographs: give --data DIR")
        return SyntheticPairObjective(adapt["task"], data, settings)
    if adapt:
        return FusionObjective(adapt["task"], adapt["a"], adapt["b"], settings)
    if not data:
        raise UserError("give --data DIR (CUD training) or --adapt TASK --a DIR --b DIR (fusion-loss adaptation)")
    return CUDObjective(data, settings)


def _with_fused_head(model, ms):
    """model.decision_map / difference / detail / pick on a network loaded without them: the terms the file has are
    kept, all else comes from the file."""
    have = tuple(bool(getattr(model.cfg, k, False)) for k in HEADS)
    wanted = tuple(w or h for w, h in zip((ms.decision_map, ms.difference, ms.detail, ms.pick), have))
    if wanted == have:
        return model
    if not hasattr(model, "with_fused_head"):
        raise UserError("model.decision_map, model.difference, model.detail and model.pick are defusion_fast "
                        "options; set model.name: defusion_fast")
    if wanted[0] and any(wanted[1:]):
        raise UserError("model.decision_map excludes model.difference, model.detail and model.pick (the decision map "
                        "has no affine part to extend); set one of them")
    return model.with_fused_head(*wanted).train()


def train(data: str | list[str] | None, settings: Settings | None, out: Path, resume: bool = False,
          iterations: int | None = None, stop_after: int | None = None, minutes: float | None = None,
          init: str | Path | None = None, adapt: dict | None = None, validation: list | None = None,
          val_every: float = 5.0) -> Path:
    """Train; `stop_after` ends this invocation after that many steps with a checkpoint (resume later).

    data: image folder(s) for CUD; adapt: dict(task, a=[dirs], b=[dirs]) for fusion-loss adaptation instead.
    minutes: wall-clock budget of this invocation. init: weight file to start from (fresh optimiser and warm-up).
    validation: ValSets scored every `val_every` minutes into val.csv / val.png.
    """
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise UserError(f"nothing to resume: {ckpt_path} does not exist; drop --resume to start a new run")
        if init:
            raise UserError("--init starts a new run from weights; drop it when you --resume")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        settings = _resumed_settings(state, settings)
    settings = settings or Settings()
    if isinstance(data, (str, Path)):
        data = [str(data)]
    if iterations:
        settings.train.iterations = iterations
    tr = settings.train
    objective = make_objective(data, settings, adapt)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    lead = rank == 0

    torch.manual_seed(tr.seed)
    torch.set_flush_denormal(True)  # CPU: denormal floats in tiny activations make every op many times slower
    if init:
        model = create_model(settings.model.name, weights=init).train()  # the file's width wins
        settings.model.width = model.cfg.width
    else:
        width = settings.model.width if settings.model.width != 1.0 else None
        model = create_model(settings.model.name, width=width).train()
    model = _with_fused_head(model, settings.model)
    model = model.to(device)
    if tr.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # Fused Adam on CUDA: one kernel for all parameters instead of several per tensor.
    opt = torch.optim.Adam(model.parameters(), lr=tr.lr, betas=(0.9, 0.999), fused=device.type == "cuda")

    passed = [0]  # milestones passed so far: a re-planned, longer run never raises the learning rate again

    def lr_factor(step: int) -> float:  # linear warm-up, then x gamma at each milestone (read live: --minutes)
        passed[0] = max(passed[0], sum(step >= int(f * tr.iterations) for f in tr.lr_milestones))
        return min(1.0, (step + 1) / tr.warmup if tr.warmup else 1.0) * tr.lr_gamma ** passed[0]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    start = 0
    if state is not None:
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])  # the factor is recomputed: --iterations may stretch the run
        start = state["iteration"]
    planning = minutes is not None and state is None  # a resumed run keeps its plan; minutes only cap its time
    net = DistributedDataParallel(model) if world > 1 else model
    if tr.compile:
        net = torch.compile(net)  # checkpoints and exports keep reading `model`: the same parameter names
    amp = _amp_dtype(tr.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    end = start + OPEN_ENDED if planning else tr.iterations
    loader = DataLoader(objective.dataset, batch_size=tr.batch, sampler=RangeSampler(start, end, tr.batch, rank, world),
                        num_workers=tr.workers, worker_init_fn=_ignore_signals, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=False)

    out.mkdir(parents=True, exist_ok=True)
    fields = ["iteration", "seen", "lr", "total", *objective.terms, *objective.extras(0), "images_per_s", "skipped"]
    log_path = out / "log.csv"
    new_log = not (resume and log_path.is_file())
    if lead and not new_log:  # rows logged after the checkpoint were lost with the crash: drop them
        rows = [r for r in csv.DictReader(log_path.open()) if int(r["iteration"]) <= start]
        with log_path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    log_file = log_path.open("w" if new_log else "a", newline="") if lead else None
    writer = csv.DictWriter(log_file, fields) if lead else None
    if lead and new_log:
        writer.writeheader()
    meta = dict(crop=tr.crop, data=[str(d) for d in data or []], adapt=adapt, init=str(init) if init else None)
    validator = Validator(validation, out, resume=resume, start=start,
                          keep_best=lambda it, q: export_weights(model, out / "best.pt", meta=dict(
                              meta, iteration=it, val_score=q))) if lead and validation else None

    def checkpoint(it: int) -> None:
        in_sync = _replicas_in_sync(model)
        if not in_sync:
            raise RuntimeError("DDP replicas diverged: parameters differ between ranks")
        if lead:
            _save_atomic(dict(state_dict=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                              iteration=it, settings=settings.to_dict(), replicas_in_sync=in_sync, world_size=world),
                         ckpt_path)
            export_weights(model, out / "model.pt", meta=dict(meta, iteration=it))
            (out / "config.yaml").write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))

    def plan(it: int, elapsed: float, place_milestones: bool) -> None:
        """Fit the run into the budget at the rate measured so far. The loss milestones are placed by the first
        two estimates only (moving them later would switch a loss term back off); the learning-rate steps follow
        every estimate but never undo a step taken."""
        rate = (it - start) / elapsed
        tr.iterations = max(it + 1, it + int(rate * (minutes * 60 - elapsed)))
        scale = objective.rescale(tr.iterations) if place_milestones else None
        if scale is not None:
            tr.schedule_scale = scale

    stop = _StopFlag()
    it, skipped, t0 = start, 0, time.perf_counter()
    last_val, next_plan, plans = t0, (start + PLAN_AFTER if planning else None), 0
    if validator:
        validator(model, it, it * tr.batch * world, 0.0)
        last_val = time.perf_counter()
    cols = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn()]
    progress = Progress(*cols, disable=not lead)
    reason = "finished"
    try:
        with progress:
            task = progress.add_task("train", total=tr.iterations, completed=start, info="")
            for batch in loader:
                skipped += int(batch.pop("skipped").sum())  # counted on the CPU: no device sync per step
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                a, b = objective.inputs(batch)
                if tr.channels_last:
                    a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
                ctx = torch.autocast(device.type, dtype=amp) if amp else nullcontext()
                with ctx:
                    out_ = net(a, b, activate=False)  # losses on pre-ReLU outputs (see DeFusion.forward)
                terms = objective.loss(type(out_)(*(t.float() for t in out_)), batch, it)
                opt.zero_grad(set_to_none=True)
                scaler.scale(terms["total"]).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                it += 1
                elapsed = time.perf_counter() - t0
                time_left = minutes is not None and elapsed < 0.97 * minutes * 60
                if it == next_plan or (planning and it >= tr.iterations and time_left):
                    # Estimate after a warm-up, then again every tenth of the run: the machine's speed may
                    # change (shared cores), and a run that got faster extends instead of ending early.
                    plan(it, elapsed, place_milestones=plans < 2)
                    plans += 1
                    next_plan = it + max(PLAN_AFTER, (tr.iterations - start) // 10)
                    progress.update(task, total=tr.iterations)
                if validator and time.perf_counter() - last_val >= val_every * 60:
                    validator(model, it, it * tr.batch * world, elapsed / 60)
                    last_val = time.perf_counter()
                if stop_after and it - start >= stop_after:
                    stop.set = True
                if minutes is not None and time.perf_counter() - t0 >= minutes * 60:
                    stop.set, reason = True, "time budget spent"
                done = it >= tr.iterations
                if lead and (it % tr.log_every == 0 or done or stop.set):  # the last step is always logged
                    vals = {k: float(v.detach()) for k, v in terms.items()}
                    rate = (it - start) * tr.batch * world / elapsed
                    writer.writerow(dict(iteration=it, seen=it * tr.batch * world, lr=sched.get_last_lr()[0], **vals,
                                         **objective.extras(it), images_per_s=round(rate, 3), skipped=skipped))
                    log_file.flush()
                    info = " ".join(f"{k[:6]} {vals[k]:.3f}" for k in ("total", *objective.terms))
                    progress.update(task, completed=it, info=f"{info} | {rate:.1f} img/s | skipped {skipped}")
                if it % tr.checkpoint_every == 0 or stop.set or done:
                    checkpoint(it)
                if stop.set or done:
                    break
    finally:
        stop.restore()
        if log_file:
            log_file.close()
        if world > 1:
            dist.destroy_process_group()
    if lead:
        if validator and it > start:
            validator(model, it, it * tr.batch * world, (time.perf_counter() - t0) / 60)
        title = "adaptation loss (fusion terms)" if adapt else "CUD training loss (batch-summed L1)"
        _plot_log(log_path, out / "loss.png", objective.terms, title)
        state = "stopped" if stop.set and reason == "finished" else reason
        print(f"{state} at iteration {it}: checkpoint {ckpt_path}, weights {out / 'model.pt'}, "
              f"log {log_path}, {skipped} unreadable images skipped")
    return out
