"""The Fuser: an engine plus a task's conventions and the inference padding, on tensors or float images."""
from __future__ import annotations

import numpy as np
import torch

from ..engines.base import Engine
from ..engines.padding import crop, pad
from ..model import VARIANTS, create_model
from ..tasks import check_task, fuses_grey, network_inputs, network_output


def to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 float image -> 1x3xHxW tensor on device."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).float().cpu().numpy()


class Fuser:
    """An engine plus a task's conventions and the inference padding: what turns two sources into one."""

    def __init__(self, engine: Engine, task: str = "ir-vis", colour: bool = False):
        self.engine, self.task, self.colour = engine, check_task(task), colour
        # The padding rules travel with the variant (registry): reflect pad_px, then up to a multiple.
        facts = VARIANTS.get(getattr(getattr(engine, "model", None), "variant", "defusion"), VARIANTS["defusion"])
        self.pad_px, self.multiple = facts["pad"], facts["multiple"]
        self._fp32 = None  # the fp32 fuser that repairs an overflowed fp16 batch, made when first needed

    @property
    def grey(self) -> bool:
        """ir-vis without colour: the network sees grey sources and returns grey, so video fuses one channel."""
        return fuses_grey(self.task, self.colour)

    def fuse_tensors(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW (or Bx1xHxW grey for ir-vis) float [0,1] on the engine's device -> fused Bx3xHxW float [0,1].
        A grey result comes back as one channel expanded to three (a view: callers may take [:, :1])."""
        fused, finite = self.fuse_deferred(a, b)
        if finite is not None and not bool(finite):  # reads the flag now; video reads it when results come back
            fused = self.repair(a, b)
        return fused

    def fuse_deferred(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused batch, and for an fp16 network a flag on the device saying all of it is finite (fp16 can
        overflow): read where the result is collected anyway, so checking costs no host sync per batch."""
        na, nb = network_inputs(a, b, self.task)
        if self.engine.needs_padding:
            grey = na.shape[1] == 3 and na.stride(1) == 0  # one grey channel expanded to three
            (pa, box), (pb, _) = (pad(x[:, :1] if grey else x, self.pad_px, self.multiple) for x in (na, nb))
            if grey and not self.engine.takes_grey:  # padding one channel instead of three: a third of the copies
                pa, pb = pa.expand(-1, 3, -1, -1), pb.expand(-1, 3, -1, -1)
            raw = crop(self.engine(pa, pb), box)
        else:
            raw = self.engine(na, nb)
        overflows = self.engine.precision == "fp16" and getattr(self.engine, "model", None) is not None
        finite = torch.isfinite(raw).all() if overflows else None
        return network_output(raw, self.task, visible=b, colour=self.colour), finite

    def repair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The batch fused again by the same network in fp32 eager: the answer where fp16 overflowed."""
        if self._fp32 is None:
            from ..engines.eager import EagerEngine
            self._fp32 = Fuser(EagerEngine(self.engine.model, self.engine.device, "fp32"), self.task, self.colour)
        return self._fp32.fuse_tensors(a, b)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Two HxWx3 float images -> the fused HxWx3 float image."""
        dev = self.engine.device
        return to_image(self.fuse_tensors(to_tensor(a, dev), to_tensor(b, dev)))


@torch.inference_mode()
def decompose(model, a: np.ndarray, b: np.ndarray, task: str, device: torch.device, pad_px: int = 16) -> dict:
    """Common, unique and fused images of a pair (fp32 eager), for looking at what the network separated."""
    na, nb = network_inputs(to_tensor(a, device), to_tensor(b, device), task)
    (ta, box), (tb, _) = pad(na, pad_px), pad(nb, pad_px)
    out = model.to(device)(ta, tb)
    return {k: to_image(crop(v, box).clamp(0, 1)) for k, v in out._asdict().items()}


def decomposition_network(variant: str, weights: str | None = None):
    """The network whose decomposition is shown: the user's weights, or else the variant's CUD weights. Shipped
    task weights are adapted for the fused image alone (train/adapt.py trains the fused head, the others drift):
    their common and unique heads no longer decompose (on TNO 01 their unique IR image is all but black)."""
    return create_model(variant, weights=weights, pretrained=weights is None).eval()


def display_gain(part: np.ndarray, cap: float = 8.0) -> float:
    """How much a faint part is brightened to be seen: its 99th percentile to mid-grey, at most `cap`."""
    top = float(np.percentile(part, 99))
    return float(min(cap, max(1.0, 0.5 / max(top, 1e-6))))
