"""The batch job on one machine: in this process, or in `workers` processes with one engine each and the CPU
cores split between them. Progress over pairs and over frames."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..pipeline import PipelineSettings
from .jobs import Job, run_job


def progress_bars(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console)


def run_local(jobs: list[Job], base: PipelineSettings, workers: int, frames_total: int | None,
              console: Console) -> tuple[list[dict], bool]:
    """The report rows of the pairs that ran, and whether Ctrl-C (or SIGTERM) cut the run short."""
    rows: list[dict] = []
    with progress_bars(console) as progress:
        pairs = progress.add_task("pairs", total=len(jobs))
        frames = progress.add_task("frames", total=frames_total)
        if workers <= 1:
            engines: dict = {}
            try:
                for job in jobs:
                    rows.append(run_job(job, base, engines, on_frame=lambda: progress.advance(frames)))
                    progress.advance(pairs)
                    if rows[-1]["status"] == "interrupted":  # the pipeline took the signal and closed its file
                        return rows, True
            except KeyboardInterrupt:  # between two pairs
                return rows, True
            return rows, False
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or OpenCV thread state
        counter = ctx.Value("q", 0)
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, counter))
        pending = {pool.submit(_work, job, base) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                progress.update(frames, completed=counter.value)
                for future in done:
                    rows.append(future.result())  # a bug in a worker re-raises here, its traceback attached
                    progress.advance(pairs)
        except KeyboardInterrupt:  # the workers' pipelines got the signal too and close their files
            pool.shutdown(wait=True, cancel_futures=True)
            return rows, True
        pool.shutdown()
        progress.update(frames, completed=counter.value)
    return rows, any(r["status"] == "interrupted" for r in rows)


_engines: dict = {}
_counter = None


def _init_worker(threads: int, counter) -> None:
    global _counter
    import torch
    torch.set_num_threads(threads)
    _counter = counter


def _tick() -> None:
    with _counter.get_lock():
        _counter.value += 1


def _work(job: Job, base: PipelineSettings) -> dict:
    return run_job(job, base, _engines, on_frame=_tick)
