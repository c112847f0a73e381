"""Engines built ahead of time for one static input shape each (one per capture resolution, padded to a multiple
of 8): TorchScript, torch.compile, torch.export + AOTInductor, ONNX Runtime, TensorRT. Dynamic H and W trip over
the decoder's resizes, so each new shape builds (or loads from the disk cache) its own engine."""
from __future__ import annotations

import copy
import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserError
from ..model import DeFusion, FusedOnly
from .base import Engine
from .eager import check_precision


def cache_dir() -> Path:
    root = os.environ.get("DEFUSION_RT_CACHE") or Path.home() / ".cache" / "defusion-rt" / "engines"
    Path(root).mkdir(parents=True, exist_ok=True)
    return Path(root)


def device_tag(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name}-sm{p.major}{p.minor}-cuda{torch.version.cuda}"
    return "cpu"


def model_digest(model: DeFusion) -> str:
    h = hashlib.sha1()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class CompiledEngine(Engine):
    """Common machinery: per-shape build, disk-cache key, dtype/memory-format handling, a lock per engine."""
    suffix = ".bin"
    channels_last = True
    takes_grey = True  # a one-channel shape builds from the grey form of the network (FusedOnly.grey)

    def __init__(self, model: DeFusion, device: torch.device, precision: str = "fp32"):
        super().__init__(device, precision)
        self.dtype = check_precision(precision, device)
        self.model = model
        self.module = FusedOnly(copy.deepcopy(model)).eval().to(device=device, dtype=self.dtype)
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self._digest = None
        self.cache_state = ""  # "loaded" or "built" once an engine file was used (warm-up says which)
        self._built: dict[tuple, Callable] = {}
        self._lock = threading.Lock()  # execution contexts are not thread-safe: one call at a time

    def cache_path(self, shape: tuple) -> Path:
        self._digest = self._digest or model_digest(self.model)
        tag = "_".join([self.name, self._digest, "x".join(map(str, shape)), self.precision, device_tag(self.device),
                        f"torch{torch.__version__}"])
        return cache_dir() / (hashlib.sha1(tag.encode()).hexdigest()[:20] + "_" + self.name + self.suffix)

    def cached(self, shape: tuple, write: Callable[[Path], None], load: Callable[[Path], Callable]) -> Callable:
        """Load the engine file for `shape`, writing it first where absent. It is written under a temporary name
        and renamed, so a killed build leaves no half file; one that fails to load (truncated, from another
        library version) is rebuilt, with a warning."""
        path = self.cache_path(shape)
        if path.is_file():
            try:
                built = load(path)
                self.cache_state = "loaded"
                return built
            except Exception as err:  # an unreadable cache costs a rebuild, never a wrong result
                print(f"warning: engine cache {path} failed to load ({type(err).__name__}); rebuilding it",
                      file=sys.stderr)
                path.unlink(missing_ok=True)
        tmp = path.with_name(f"tmp{os.getpid()}_{path.name}")  # same suffix: some writers choose a format by it
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.cache_state = "built"
        return load(path)

    def module_for(self, shape: tuple) -> FusedOnly:
        """The network to build for `shape`: the grey form for one-channel sources."""
        return self.module.grey() if shape[1] == 1 else self.module

    def example(self, shape: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(shape, device=self.device, dtype=self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, x.clone()

    def build(self, shape: tuple) -> Callable:
        raise NotImplementedError

    def prepare(self, shape: tuple) -> None:
        """Build (or load) the engine for `shape` now, e.g. before timing."""
        if shape not in self._built:
            with torch.inference_mode(False), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._built[shape] = self.build(shape)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = tuple(a.shape)
        self.prepare(shape)
        mf = torch.channels_last if self.channels_last else torch.contiguous_format
        a, b = a.to(self.dtype).contiguous(memory_format=mf), b.to(self.dtype).contiguous(memory_format=mf)
        with self._lock, torch.inference_mode():
            return self._built[shape](a, b).float()


class TorchScriptEngine(CompiledEngine):
    """Traced, saved and reloaded from disk (not frozen: freezing moved fp32 results by 0.4% here). TorchScript
    is deprecated in torch 2.x: kept as legacy."""
    name, suffix = "torchscript", ".pt"

    def build(self, shape):
        def write(path: Path) -> None:
            with torch.no_grad():
                torch.jit.save(torch.jit.trace(self.module_for(shape), self.example(shape), check_trace=False), str(path))
        return self.cached(shape, write, lambda path: torch.jit.load(str(path), map_location=self.device))


class CompileEngine(CompiledEngine):
    """torch.compile (Inductor); on CUDA `cudagraphs=True` captures CUDA graphs ("reduce-overhead")."""
    name = "compile"

    def __init__(self, model, device, precision="fp32", cudagraphs: bool | None = None):
        super().__init__(model, device, precision)
        self.mode = "reduce-overhead" if (cudagraphs if cudagraphs is not None else device.type == "cuda") else None

    def build(self, shape):
        import torch._dynamo
        import torch._inductor.config as inductor
        # Every engine and shape compiles the same forward code once; dynamo's default limit of 8 would stop a
        # long-running process (or the benchmark matrix) with a hard error.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
        fn = torch.compile(self.module_for(shape), mode=self.mode, dynamic=False, fullgraph=True)
        with torch.no_grad(), inductor.patch(freezing=True):  # weights as constants: oneDNN prepacks convs
            fn(*self.example(shape))  # compile now, not on the first real frame
        return fn


class ExportEngine(CompiledEngine):
    """torch.export + AOTInductor: an ahead-of-time compiled package on disk, loaded without recompiling."""
    name, suffix = "export", ".pt2"

    def build(self, shape):
        try:
            from torch._inductor import aoti_compile_and_package, aoti_load_package
        except ImportError:
            raise UserError("this torch has no AOTInductor (torch >= 2.6 needed); use --engine compile") from None

        def write(path: Path) -> None:
            with torch.no_grad():
                ep = torch.export.export(self.module_for(shape), self.example(shape))
                aoti_compile_and_package(ep, package_path=str(path), inductor_configs={"freezing": True})
        return self.cached(shape, write, lambda path: aoti_load_package(str(path)))


class OnnxEngine(CompiledEngine):
    """ONNX export + ONNX Runtime: the portable path (CPU; CUDA or TensorRT providers where installed)."""
    name, suffix, channels_last = "onnx", ".onnx", False

    def __init__(self, model, device, precision="fp32"):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise UserError("the onnx engine needs onnxruntime: pip install 'defusion-rt[onnx]'") from None
        if precision != "fp32":
            raise UserError("the onnx engine runs fp32 here; use --precision fp32 (fp16 needs the CUDA provider)")
        super().__init__(model, device, precision)

    def build(self, shape):
        import onnxruntime as ort

        def write(path: Path) -> None:
            with torch.no_grad():
                torch.onnx.export(self.module_for(shape), self.example(shape), str(path), input_names=["a", "b"],
                                  output_names=["fused"], opset_version=17, dynamo=False)
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if self.device.type == "cuda" else []
        providers = [p for p in wanted if p in ort.get_available_providers()] + ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = self.cached(shape, write, lambda path: ort.InferenceSession(str(path), opts, providers=providers))

        out_shape = tuple(session.get_outputs()[0].shape)  # static: the export fixed the input shape
        where = (self.device.type, self.device.index or 0)

        def run(a, b):
            # IOBinding: ONNX Runtime reads the inputs and writes the output where torch keeps them (GPU memory
            # on CUDA): no copy through numpy and the host. Its CUDA stream does not wait on torch's, so the
            # inputs are made ready first; the run itself returns when its result is written.
            out = torch.empty(out_shape, dtype=torch.float32, device=self.device)
            binding = session.io_binding()
            for name, x in (("a", a), ("b", b)):
                binding.bind_input(name, *where, np.float32, tuple(x.shape), x.data_ptr())
            binding.bind_output("fused", *where, np.float32, out_shape, out.data_ptr())
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            session.run_with_iobinding(binding)
            return out
        return run


class TensorRTEngine(CompiledEngine):
    """torch-tensorrt, FP16 as a half model with half inputs (TensorRT 11 has no weak typing): the engine's real
    output dtype is checked, and built engines are cached per model/shape/GPU/TRT. An fp16 batch that overflows is
    fused again in fp32 by the Fuser (fuse_deferred), as for every fp16 engine."""
    name, suffix = "tensorrt", ".ep"

    def __init__(self, model, device, precision="fp16"):
        if device.type != "cuda":
            raise UserError("the tensorrt engine needs a CUDA GPU; use --device cuda or another engine")
        try:
            import torch_tensorrt  # noqa: F401
        except ImportError:
            raise UserError("the tensorrt engine needs torch-tensorrt: pip install 'defusion-rt[tensorrt]'") from None
        super().__init__(model, device, precision)

    def cache_path(self, shape):
        import tensorrt
        return super().cache_path(shape).with_name(f"trt{tensorrt.__version__}_" + super().cache_path(shape).name)

    def build(self, shape):
        import torch_tensorrt
        example = list(self.example(shape))

        def write(path: Path) -> None:
            trt = torch_tensorrt.compile(self.module_for(shape), ir="dynamo", arg_inputs=example,
                                         use_explicit_typing=True)
            out = trt(*example)
            if out.dtype != self.dtype:
                raise UserError(f"TensorRT built a {out.dtype} engine for precision {self.precision}; refusing it")
            torch_tensorrt.save(trt, str(path), arg_inputs=example)
        # An engine built by another TensorRT or GPU fails to load and is rebuilt.
        return self.cached(shape, write, lambda path: torch_tensorrt.load(str(path)).module())


COMPILED = {e.name: e for e in (TorchScriptEngine, CompileEngine, ExportEngine, OnnxEngine, TensorRTEngine)}
