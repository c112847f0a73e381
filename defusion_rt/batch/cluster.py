"""The batch job on a Ray cluster: one Ray task per pair, with its CPU and GPU request, retried by Ray when its
worker or node is lost. Outputs are written by the tasks to their paths, which every node must see (a shared or
network file system); the driver decides what is complete before scheduling, so a rerun does only what is left.

`pip install "defusion-rt[cluster]"` installs Ray.
"""
from __future__ import annotations

import os
import socket

from rich.console import Console

from ..errors import UserError
from ..pipeline import PipelineSettings
from .jobs import Job, run_job
from .local import progress_bars


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install \"defusion-rt[cluster]\" (or pip install ray)") from None
    return ray


def connect(address: str, num_cpus: int | None = None):
    """`local`: start Ray on this machine for this run; `auto`: the cluster this machine belongs to; else an
    address (ray://HEAD:10001 or HEAD:6379)."""
    ray = _ray()
    if address not in ("local", "auto"):
        _check_reachable(address)
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except ConnectionError as err:
            raise UserError(f"cannot reach a Ray cluster at '{address}': {err}; start one with `ray start --head` "
                            "or use --ray local") from None
    return ray


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes: a quick TCP connect says at once what is wrong."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    hint = "start one with `ray start --head` or use --ray local"
    if not host or not port.isdigit():
        raise UserError(f"--ray needs local, auto, HOST:PORT or ray://HOST:PORT, not '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise UserError(f"cannot reach a Ray cluster at {hostport} ({err.strerror or err}); {hint}") from None


def run_ray(jobs: list[Job], base: PipelineSettings, address: str, cpus: float, gpus: float,
            frames_total: int | None, console: Console, retries: int = 3, local_cpus: int | None = None) -> list[dict]:
    ray = connect(address, local_cpus)
    task = ray.remote(_fuse_pair).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries)
    refs = {task.remote(job, base, max(1, int(cpus))): job for job in jobs}
    rows: list[dict] = []
    with progress_bars(console) as progress:
        pairs = progress.add_task("pairs", total=len(jobs))
        frames = progress.add_task("frames", total=frames_total)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                rows.append(ray.get(ref))  # a bug in a task re-raises here with the task's traceback
                progress.advance(pairs)
                progress.advance(frames, rows[-1]["frames"])
    return rows


_engines: dict = {}  # per Ray worker process: one engine per settings, reused across the pairs it runs


def _fuse_pair(job: Job, base: PipelineSettings, threads: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    row = run_job(job, base, _engines)
    row["node"] = os.uname().nodename
    return row
