"""Eager PyTorch: fp32, fp16 (CUDA) or bf16, channels-last."""
from __future__ import annotations

import copy

import torch

from ..errors import UserError
from ..model import DeFusion, FusedOnly
from .base import Engine

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "int8":
        raise UserError("int8 runs on the openvino engine only (a network made by `defusion-rt quantize`): "
                        "--engine openvino, or in evaluate NAME@openvino:int8")
    if precision not in DTYPES:
        raise UserError(f"unknown precision '{precision}'; choose one of: {', '.join(DTYPES)}")
    if precision == "fp16" and device.type == "cpu":
        raise UserError("fp16 runs on CUDA only; use --precision bf16 on the CPU")
    if precision == "bf16" and device.type == "cpu":
        from .cpu import warn_if_emulated
        warn_if_emulated(precision)
    return DTYPES[precision]


class EagerEngine(Engine):
    name, takes_grey = "eager", True

    def __init__(self, model: DeFusion, device: torch.device, precision: str = "fp32", channels_last: bool = True):
        super().__init__(device, precision)
        self.dtype = check_precision(precision, device)
        self.model = model
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # A copy: casting in place would change the caller's model (and every engine sharing it).
        self.module = FusedOnly(copy.deepcopy(model)).eval().to(device=device, dtype=self.dtype,
                                                                memory_format=self.memory_format)
        self.grey_module = None  # made on the first grey call

    @torch.inference_mode()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = a.to(self.dtype).contiguous(memory_format=self.memory_format)
        b = b.to(self.dtype).contiguous(memory_format=self.memory_format)
        if a.shape[1] == 1:
            if self.grey_module is None:
                self.grey_module = self.module.grey()
            return self.grey_module(a, b).float()
        return self.module(a, b).float()
