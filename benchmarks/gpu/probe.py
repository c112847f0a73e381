"""The GPU kit's training probe: images/s of the training step the trainer runs (bf16 autocast, channels-last,
fused Adam on CUDA, no host sync inside the timed steps), eager and compiled, and of the data loader alone.

The kit reads it to choose the batch and whether to compile: compiling pays back when the compiled rate over
the time left after its build beats the eager rate over the whole budget.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from defusion_rt.config import Settings
from defusion_rt.model import create_model
from defusion_rt.train.data import RangeSampler
from defusion_rt.train.loop import _amp_dtype
from defusion_rt.train.pretext import CUDObjective


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_step(settings: Settings, objective: CUDObjective, batch: int, device: torch.device, init: Path | None,
                compile_model: bool):
    """One training step on a fixed batch (data already decoded and on the device), as the trainer runs it."""
    model = create_model(settings.model.name, weights=init, width=None if init else settings.model.width)
    model = model.to(device).train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    net = torch.compile(model) if compile_model else model
    samples = [objective.dataset[i] for i in range(batch)]
    data = {k: torch.stack([torch.as_tensor(s[k]) for s in samples]).to(device) for k in samples[0] if k != "skipped"}
    amp = _amp_dtype(settings.train.amp, device)

    def step() -> None:
        a, b = (x.contiguous(memory_format=torch.channels_last) for x in objective.inputs(data))
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = net(a, b, activate=False)
        loss = objective.loss(type(out)(*(t.float() for t in out)), data, 30000)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _rate(step, batch: int, device: torch.device, seconds: float) -> tuple[float, float]:
    """(images/s, seconds of the first step: the build when compiling). Steps are queued in growing runs with
    one sync per run, so the timing has no host sync per step, like the trainer."""
    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(2):  # allocator and cuDNN autotuning
        step()
    _sync(device)
    n, steps, t0 = 1, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(n):
            step()
        _sync(device)
        steps, n = steps + n, n * 2
    return steps * batch / (time.perf_counter() - t0), first


def probe_training(settings: Settings, data: list[str], batches: list[int], device: torch.device, seconds: float,
                   init: Path | None, try_compile: bool, budget_s: float) -> dict:
    """Eager images/s per batch; at the best batch, the compiled rate and build time, and the choice."""
    settings.train.batch = max(batches)
    torch.set_flush_denormal(True)  # as the trainer does
    objective = CUDObjective(data, settings)
    eager = {}
    for b in batches:
        eager[b], _ = _rate(_train_step(settings, objective, b, device, init, False), b, device, seconds)
        print(f"probe: batch {b}: {eager[b]:.1f} images/s", flush=True)
    best = max(eager, key=eager.get)
    result = dict(images_per_s={b: round(r, 2) for b, r in eager.items()}, batch=best, compile=False)
    if try_compile:
        rate, build = _rate(_train_step(settings, objective, best, device, init, True), best, device, seconds)
        # images in the budget: eager r_e * T against compiled r_c * (T - build) (the trainer builds again,
        # from Inductor's cache where it holds, so this is the pessimistic side)
        pays = rate * max(0.0, budget_s - build) > eager[best] * budget_s
        result.update(compiled_images_per_s=round(rate, 2), compile_build_s=round(build, 1), compile=bool(pays),
                      compile_speedup=round(rate / eager[best], 3))
        print(f"probe: compiled batch {best}: {rate:.1f} images/s after a {build:.0f} s build: "
              f"{'compile' if pays else 'eager'} for a {budget_s / 60:.1f} min budget", flush=True)
    return result


def loader_rate(settings: Settings, data: list[str], batch: int, workers: int, seconds: float) -> float:
    """Images/s the data path delivers with `workers` processes (decode, crop, masks), the GPU not involved."""
    objective = CUDObjective(data, settings)
    loader = DataLoader(objective.dataset, batch_size=batch, sampler=RangeSampler(0, 10 ** 9, batch, 0, 1),
                        num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up is not the steady rate
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += batch
    rate = n / (time.perf_counter() - t0)
    del it
    return rate
