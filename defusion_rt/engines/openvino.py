"""OpenVINO on the CPU: fp32, bf16 (where the CPU has it) and int8 (the network quantized by `defusion-rt quantize`,
found by the digest of the weights it was made from). Each input shape compiles once; the compiled blob is cached
on disk like the other engines' builds, keyed by OpenVINO's version and the CPU class it was compiled for."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..model import FusedOnly
from .compiled import CompiledEngine, cache_dir, model_digest
from .cpu import cpu_class, warn_if_emulated

PRECISIONS = ("fp32", "bf16", "int8")


def int8_folders() -> list[Path]:
    """Where int8 networks are looked for: beside the shipped weights, then the user's (quantize's default)."""
    from ..model.registry import WEIGHTS_DIR
    return [WEIGHTS_DIR, cache_dir() / "int8"]


def int8_path(model) -> Path | None:
    """The int8 network made from exactly these weights (its name carries their digest), or None."""
    digest = model_digest(model)
    return next((p for d in int8_folders() for p in sorted(d.glob(f"*.{digest}.int8.xml"))), None)


def to_openvino(model, shape: tuple | None = None):
    """The fused-output network as an OpenVINO model; spatial size (and batch) dynamic unless `shape` is given."""
    import openvino as ov
    module = FusedOnly(model).eval().float()
    n, c, h, w = shape or (1, 3, 96, 128)
    example = (torch.rand(n, c, h, w), torch.rand(n, c, h, w))
    dims = [n, c, h, w] if shape else [-1, c, -1, -1]
    with torch.no_grad():
        return ov.convert_model(module, example_input=example, input=[("a", dims), ("b", dims)])


class OpenVinoEngine(CompiledEngine):
    name, suffix, channels_last = "openvino", ".blob", False

    def __init__(self, model, device, precision="fp32"):
        if device.type != "cpu":
            raise UserError("the openvino engine runs on the CPU here; use --device cpu or another engine")
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise UserError("the openvino engine needs openvino: pip install openvino") from None
        if precision not in PRECISIONS:
            raise UserError(f"the openvino engine runs {', '.join(PRECISIONS)}; not '{precision}'")
        warn_if_emulated(precision)
        self.int8 = int8_path(model) if precision == "int8" else None
        if precision == "int8" and self.int8 is None:
            raise UserError(f"no int8 network for these {getattr(model, 'variant', '')} weights; make one with "
                            "`defusion-rt quantize --task TASK --weights FILE --a FRAMES_A --b FRAMES_B` "
                            "or use --precision fp32")
        super().__init__(model, device, "fp32")  # the torch module stays fp32: OpenVINO lowers it itself
        self.precision = precision
        self.takes_grey = self.int8 is None  # the int8 network was quantized with three input channels
        # Layers left in float stay fp32: OpenVINO's default on a bf16 CPU is bf16, and bf16 costs IR-visible
        # fusion 0.15-0.17 MI (benchmarks/evaluation/cpu_precisions_*.md) where int8 holds it.
        self.hint = "bf16" if precision == "bf16" else "f32"

    def cache_path(self, shape):
        import openvino
        tag = f"ov{openvino.__version__.split('-')[0]}_{cpu_class()}_{self.hint}_"
        if self.int8:  # the int8 network's own content: a re-quantized network must not load the old build
            content = self.int8.read_bytes() + self.int8.with_suffix(".bin").read_bytes()
            tag += hashlib.sha1(content).hexdigest()[:12] + "_"
        path = super().cache_path(shape)
        return path.with_name(tag + path.name)

    def _model(self, shape: tuple):
        import openvino as ov
        if not self.int8:
            return to_openvino(self.module_for(shape).net, shape)
        try:
            net = ov.Core().read_model(str(self.int8))
        except RuntimeError as err:  # OpenVINO's error for an unreadable or truncated model file
            raise UserError(f"cannot read the int8 network {self.int8} ({str(err).splitlines()[0][:80]}); delete "
                            "it and make it again with `defusion-rt quantize`, or use --precision fp32") from None
        net.reshape({"a": list(shape), "b": list(shape)})
        return net

    def build(self, shape):
        import openvino as ov
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.hint}

        def write(path: Path) -> None:
            blob = io.BytesIO()
            core.compile_model(self._model(shape), "CPU", config).export_model(blob)
            path.write_bytes(blob.getvalue())
        compiled = self.cached(shape, write, lambda path: core.import_model(path.read_bytes(), "CPU", config))
        request = compiled.create_infer_request()

        def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            request.infer({"a": a.numpy(), "b": b.numpy()})
            return torch.from_numpy(np.array(request.get_output_tensor(0).data))  # a copy: the next call reuses it
        return run
