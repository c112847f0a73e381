"""The engine interface: every fusion backend (eager, TorchScript, compiled, exported, ONNX, TensorRT, classical
baselines) takes two padded NCHW float tensors in [0,1] and returns the fused NCHW float32 tensor."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch


def resolve_device(device: str) -> torch.device:
    from ..errors import UserError
    if device in ("auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but this torch has no CUDA device; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"unknown device '{device}'; use cpu, cuda or auto")
    return torch.device(device)


class Engine(ABC):
    name: str = "engine"
    needs_padding = True  # networks want reflect padding; pixel-wise baselines do not
    takes_grey = False  # accepts Bx1xHxW grey sources as well (ir-vis video sends one channel, not three copies)

    def __init__(self, device: torch.device, precision: str = "fp32"):
        self.device, self.precision = device, precision

    @abstractmethod
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: Bx3xHxW (or Bx1xHxW where takes_grey) float on self.device -> fused BxCxHxW float32."""

    def describe(self) -> str:
        """What the overlay and the run summary name: variant, engine, precision, device."""
        variant = getattr(getattr(self, "model", None), "variant", "")
        return f"{variant + ' ' if variant else ''}{self.name} {self.precision} on {self.device}"
