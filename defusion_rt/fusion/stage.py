"""Stage 4 as a pipeline stage: the engine chosen, built and warmed up before capture starts, then a worker
thread that takes pairs, registers them (stage 3) and fuses them in batches.

A bug in the worker is kept (with its traceback) for the main thread to raise once every stage has stopped; a
user's problem (a stalled source, a registration that fails its check) is a UserError.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

from ..capture import END, Closed, Frame, FrameQueue
from ..engines import CLASSICAL, Engine, auto_choice, create_engine
from ..engines.classical import ClassicalEngine
from ..engines.openvino import int8_path
from ..errors import UserError
from ..model import create_model, variant_for_weights
from ..tasks import check_task
from .fuser import Fuser
from .steady import Steady
from .streamed import StreamedFuser

Pair = tuple[Frame, Frame]


@dataclass
class FusionSettings:
    task: Literal["ir-vis", "multi-exposure", "multi-focus"] = "ir-vis"
    method: Literal["defusion", "average", "max", "laplacian", "mertens"] = "defusion"
    # auto (model, engine, precision): camera rate first; on a CPU the real-time variant defusion_fast with the
    # engine measured fastest for the CPU's class (OpenVINO int8); on CUDA the task's best variant compiled in
    # fp16 (engines.auto_choice). Name them to choose.
    model: Literal["auto", "defusion", "defusion_fast", "defusion_lite"] = "auto"
    engine: Literal["auto", "eager", "torchscript", "compile", "export", "onnx", "tensorrt", "openvino"] = "auto"
    device: str = "auto"        # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"  # fp16 on CUDA only, int8 OpenVINO only
    batch: int = 1              # pairs fused per call for recorded sources (live sources fuse one at a time)
    weights: str = ""           # empty: the weights shipped in the package
    colour: bool = False        # ir-vis: keep the visible image's colour
    # video: each fused frame changes from the last only as far as the sources changed nearby (steady.py): no
    # flicker where the scene holds still; false fuses every frame on its own
    steady: bool = True
    # levels a frame an output left more than 16 behind the network moves towards it where its sources hold
    # still; 0 (no catch-up, no flicker) suits cameras, whose noise lets it follow. For noise-free (rendered) video.
    steady_catch_up: int = 0


@dataclass(slots=True)
class FusedFrame:
    """What travels from fusion to rendering: the fused frame, its two aligned sources and their timing."""
    image: np.ndarray           # HxWx3 uint8 BGR
    a: np.ndarray               # the aligned sources, as fused
    b: np.ndarray
    index_a: int
    index_b: int
    ts_a: float                 # source timestamps (s)
    ts_b: float
    captured: float             # time.monotonic() when the later of the two was read
    wait_ms: float              # from capture to fusion start: queueing
    register_ms: float
    fuse_ms: float

    @property
    def skew_ms(self) -> float:
        return 1000 * abs(self.ts_a - self.ts_b)


def fused_frame(item: tuple, image: np.ndarray, t_submit: float, done: float,
                steady: Steady | None = None) -> FusedFrame:
    """A fused result with its timing: `item` is ((frame A, frame B), aligned a, aligned b, registration s);
    `steady` is the stream's own, fed its frames in order."""
    (fa, fb), a, b, reg_s = item
    if steady is not None:
        image = steady(a, b, image)
    captured = max(fa.captured, fb.captured)
    return FusedFrame(image, a, b, fa.index, fb.index, fa.timestamp, fb.timestamp, captured,
                      wait_ms=1000 * max(0.0, t_submit - reg_s - captured), register_ms=1000 * reg_s,
                      fuse_ms=1000 * (done - t_submit))


def make_engine(s: FusionSettings) -> Engine:
    """The settings' engine: a classical method, or the network with `auto` resolved for this device."""
    check_task(s.task)
    if s.method != "defusion":
        return create_engine(s.method, s.device)
    model = s.model if s.model != "auto" else variant_for_weights(s.weights) if s.weights else None
    # A weight file knows its architecture; a named engine gets its own best precision.
    auto = auto_choice(s.device, s.task, model, None if s.engine == "auto" else s.engine)
    pick = {k: auto[k] if getattr(s, k) == "auto" else getattr(s, k) for k in ("model", "engine", "precision")}
    net = create_model(pick["model"], weights=s.weights or None, pretrained=not s.weights, task=s.task)
    if pick["precision"] == "int8" and s.precision == "auto" and int8_path(net) is None:
        pick["precision"] = "fp32"  # weights nobody quantized yet (`defusion-rt quantize` makes their int8 network)
    return create_engine(pick["engine"], s.device, pick["precision"], model=net)


class EngineThread:
    """The one thread that calls the engine: the warm-up and then the fusion loop run here. torch keeps CUDA graphs
    per thread, so the graphs the warm-up captures are the ones the loop replays (warmed up on the main thread,
    they would be captured again on the first live frames). A daemon: a hung engine cannot hold the exit."""

    def __init__(self):
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="fusion", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self.jobs.put((future, fn, args))
        return future

    def close(self) -> None:
        self.jobs.put(None)

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            future, fn, args = job
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # handed to whoever waits on the future, traceback and all
                future.set_exception(err)


class FusionStage:
    """In: pairs and a registration. Out: FusedFrames on `out`, then END."""

    def __init__(self, s: FusionSettings, engine: Engine | None = None):
        assert s.method in ("defusion", *CLASSICAL)
        self.s = s
        self.fuser = Fuser(engine or make_engine(s), s.task, colour=s.colour)
        self.steady = Steady(self.fuser.grey, leak=s.steady_catch_up) if s.steady else None
        self.error: BaseException | None = None
        self.worker: EngineThread | None = None  # started by the warm-up or start(): a failed set-up leaks none
        self.threads = torch.get_num_threads()  # the worker may change it (see _work); join() restores it

    @property
    def engine(self) -> Engine:
        return self.fuser.engine

    def warm_up(self, size: tuple[int, int], batch: int, say: Callable[[str], None] = print) -> None:
        """Compiled engines build per input shape: build for the frames' size now, before capture starts, so no
        frame waits on it (a registration estimated on the first pair fixes the size only then)."""
        if hasattr(self.engine, "prepare"):
            try:
                self._worker().submit(self._warm_up, size, batch, say).result()  # the engine's errors raise here
            except BaseException:
                self.join(timeout=5.0)
                raise

    def _worker(self) -> EngineThread:
        self.worker = self.worker or EngineThread()
        return self.worker

    def _warm_up(self, size: tuple[int, int], batch: int, say: Callable[[str], None]) -> None:
        w, h = size
        say(f"preparing the {self.engine.describe()} engine for {w}x{h}")
        t0 = time.monotonic()
        zeros = torch.zeros(batch, 1 if self.fuser.grey else 3, h, w, device=self.engine.device)
        with torch.inference_mode():
            for _ in range(3):  # the first calls after a build also set up oneDNN primitives and the allocator
                self.fuser.fuse_tensors(zeros, zeros)
        how = {"loaded": "loaded from the disk cache", "built": "built and cached on disk (later runs load it)"}
        say(f"engine {how.get(getattr(self.engine, 'cache_state', ''), 'ready')} in {time.monotonic() - t0:.1f} s")

    def start(self, pairs: Callable[[], Pair | None], register: Callable, out: FrameQueue, batch: int,
              stop: threading.Event, stall_s: float) -> None:
        self.run_loop(self._work, pairs, register, out, batch, stop, stall_s)

    def run_loop(self, loop: Callable, *args) -> None:
        """Run `loop(*args)` on the engine thread, after the warm-up, as its last job."""
        self._worker().submit(self._set_threads)
        self._worker().submit(loop, *args)
        self.worker.close()

    def _set_threads(self) -> None:
        if isinstance(self.engine, ClassicalEngine) and self.engine.device.type == "cpu":
            # Pixel-wise methods are a few memory-bound passes: one thread does them, and OpenMP workers spinning
            # between such tiny ops take the cores from capture and encoding (see bench's e2e_classical row).
            # Set before this thread's first op; restored by join().
            torch.set_num_threads(1)

    def streamed(self, pad_to: int = 1) -> StreamedFuser:
        """On CUDA up to 3 batches in flight (copy in, compute, copy out overlap); on the CPU one at a time."""
        return StreamedFuser(self.fuser, depth=3 if self.engine.device.type == "cuda" else 1, pad_to=pad_to)

    def _work(self, pairs, register, out: FrameQueue, batch: int, stop: threading.Event, stall_s: float) -> None:
        streamed = self.streamed()
        try:
            done = False
            while not done and not stop.is_set():
                items = []
                while len(items) < batch:
                    pair = self.next_pair(pairs, stall_s)
                    if pair is None:
                        done = True
                        break
                    t0 = time.monotonic()
                    a, b = register(pair[0].image, pair[1].image)
                    items.append((pair, a, b, time.monotonic() - t0))
                if items:
                    self._emit(streamed.submit([x[1] for x in items], [x[2] for x in items],
                                               (items, time.monotonic())), out)
            self._emit(streamed.flush(), out)
        except Closed:
            pass
        except BaseException as err:  # surfaced on the main thread, traceback and all
            self.error = err
        finally:
            out.put(END)

    @staticmethod
    def next_pair(pairs: Callable[[], Pair | None], stall_s: float) -> Pair | None:
        """The next pair; waiting longer than the sources allow is a stall (any other timeout is a bug)."""
        try:
            return pairs()
        except TimeoutError:
            raise UserError(f"a source stalled: no frame for {stall_s:.0f} s; check the camera or stream "
                            "(live sources reconnect automatically)") from None

    def _emit(self, finished, out: FrameQueue) -> None:
        for frames, (items, t_submit) in finished:
            done = time.monotonic()
            for item, img in zip(items, frames):
                out.put(fused_frame(item, img, t_submit, done, self.steady))

    def join(self, timeout: float, warn: Callable[[str], None] = print) -> None:
        torch.set_num_threads(self.threads)
        if self.worker is None:
            return
        self.worker.close()
        self.worker.thread.join(timeout)
        if self.worker.thread.is_alive():
            warn(f"the fusion thread did not stop within {timeout:.0f} s; it is left running")
