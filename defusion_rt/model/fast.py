"""DeFusion-Fast: the DeFusion design at about 4.5 GFLOP per 640x480 pair (the paper network: about 158), for
camera rate on a CPU.

The roles stay those of the paper network: a Siamese encoder, an ensembler on the deepest features, a common
decoder (skips from both encoders), a unique decoder run once per source, three heads over 16-channel embeddings.
What moves is resolution. The encoder is strided from its first conv, plain 3x3 convs replace split-attention
bottlenecks (oneDNN runs them fast in bf16), and the decoders end at quarter resolution. Full resolution is
reached the way guided filters do it: each head predicts, at quarter resolution, a per-pixel affine mix of the two
sources (a weight per source plus an RGB offset); the coefficient maps are smooth, so they are upsampled bilinearly
and applied to the full-resolution sources, which put their own detail back. Per task the fused head can
choose a source per pixel from the difference of the unique embeddings: a decision map (multi-focus) or an added
d (a - b) (IR-visible), and the finest detail can be picked per pixel from the source with more local
contrast (multi-exposure, DetailPick); see FastConfig.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks import LUMA
from .defusion import Decomposition
from .layers import init_he_fan_out
from .pyramid import blur_kernel, collapse, laplacian_pyramid, lowpass

COEFFS = 5  # per head: weight of source a, weight of source b, RGB offset


@dataclass(frozen=True)
class FastConfig:
    width: float = 1.0
    # The fused head predicts a soft decision map w instead of the affine mix: fused = w a + (1 - w) b, the form
    # multi-focus fusion wants (every output pixel is one of the sources' own, or a blend at a focus boundary).
    # w is read from the difference of the unique embeddings (DifferenceHead): the logit, through a sigmoid.
    decision_map: bool = False
    # The affine fused head gains a term d (a - b), d read from that same difference: a per-pixel choice between
    # the sources, which the near swap-invariant fused embedding cannot express (multi-exposure, IR-visible).
    difference: bool = False
    # The affine fused head gains a detail term ka h(a) + kb h(b), h(x) = x - (x averaged over 4x4 blocks and
    # upsampled), ka and kb read from the fused embedding: how much of each source's fine detail to add back on top of
    # the mix. A mix of smooth weights keeps a weighted mean of the sources' local contrast, where MEF-SSIM asks for
    # the larger one (multi-exposure).
    detail: bool = False
    # The finest PICK_LEVELS Laplacian levels of the fused image are replaced by the sources' own, picked per pixel
    # by their local contrast, as the Laplacian pyramid's max-abs rule does, with a learned gain per level and a
    # learned bias from the unique embeddings (DetailPick). MEF-SSIM judges only such fine structure and asks for
    # the larger contrast, which no smooth quarter-resolution mix can give (multi-exposure).
    pick: bool = False

    def ch(self, planes: int) -> int:
        return max(4, int(round(planes * self.width / 4)) * 4)


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _fine(x: torch.Tensor) -> torch.Tensor:
    """x less its 4x4 block means upsampled: the detail finer than the quarter-resolution coefficient maps."""
    return x - _up(F.avg_pool2d(x, 4, ceil_mode=True), x)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=1), nn.ReLU(inplace=True))


class FastEncoder(nn.Module):
    def __init__(self, cfg: FastConfig):
        super().__init__()
        c = cfg.ch
        self.stem = conv(3, c(16), 2)                                       # 1/2
        self.l1 = nn.Sequential(conv(c(16), c(24), 2), conv(c(24), c(24)))  # f1: 1/4
        self.l2 = nn.Sequential(conv(c(24), c(48), 2), conv(c(48), c(48)))  # f2: 1/8
        self.l3 = nn.Sequential(conv(c(48), c(64), 2), conv(c(64), c(64)))  # f3: 1/16

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f1 = self.l1(self.stem(x))
        f2 = self.l2(f1)
        return f1, f2, self.l3(f2)


class FastDecoder(nn.Module):
    """Three stages, deepest first: concat skips -> conv -> bilinear resize to the next skip's size."""

    def __init__(self, in_chs: tuple[int, int, int], planes: tuple[int, int, int]):
        super().__init__()
        self.d1 = conv(in_chs[0], planes[0])
        self.d2 = conv(planes[0] + in_chs[1], planes[1])
        self.d3 = conv(planes[1] + in_chs[2], planes[2])

    def forward(self, deep: list[torch.Tensor], mid: list[torch.Tensor], shallow: list[torch.Tensor]) -> torch.Tensor:
        x = _up(self.d1(torch.cat(deep, 1)), mid[0])
        x = _up(self.d2(torch.cat([x, *mid], 1)), shallow[0])
        return self.d3(torch.cat([x, *shallow], 1))


class DifferenceHead(nn.Module):
    """One map from e_ua - e_ub through an odd function (bias-free convs around tanh): swapping the sources
    negates it, so the fused image does not depend on their order. Identical sources give 0 exactly.

    Why: the fused embedding e_c + e_ua + e_ub is nearly the same for (a, b) and (b, a), so a head on it cannot
    tell which source is sharp or brighter; a decision map read from it drifted to w = 1 everywhere under L1,
    where every constant w costs the same (benchmarks/training/fast/multi_focus_map).
    """

    def __init__(self, chs: int = 16):
        super().__init__()
        self.c1 = nn.Conv2d(chs, chs, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(chs, 1, 3, padding=1, bias=False)

    def forward(self, e_ua: torch.Tensor, e_ub: torch.Tensor) -> torch.Tensor:
        return self.c2(torch.tanh(self.c1(e_ua - e_ub)))


PICK_LEVELS = 2  # full and half resolution; chosen on validation stacks (benchmarks/training/fast/pick_levels.json)
PICK_GAIN = 1000.0  # starting gain: a contrast margin of 0.003 (under a grey level) picks at 95%


class DetailPick(nn.Module):
    """Each fine level of the fused pyramid becomes w A_l + (1 - w) B_l, w = sigmoid(g_l (E_l(A) - E_l(B)) + t),
    E_l the 3x3 mean of the level's absolute luma, g_l a learned gain, t a learned logit map from e_ua - e_ub
    (a DifferenceHead: swapping the sources swaps the pick). At t = 0 it is the Laplacian pyramid's rule, which
    also picks noise (an under-exposed shadow's, brightened); t is where the network may overrule it."""

    def __init__(self, chs: int = 16):
        super().__init__()
        self.bias = DifferenceHead(chs)
        self.log_gain = nn.Parameter(torch.full((PICK_LEVELS,), math.log(PICK_GAIN)))
        self.register_buffer("kernel", blur_kernel(), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)  # BT.601, as metrics

    def _luma_abs(self, level: torch.Tensor) -> torch.Tensor:
        return (level * self.luma).sum(1, keepdim=True).abs()

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor, e_ua: torch.Tensor,
                e_ub: torch.Tensor) -> torch.Tensor:
        t = self.bias(e_ua, e_ub)
        levels = len(self.log_gain)
        pa, pb = (laplacian_pyramid(x, levels, self.kernel) for x in (a, b))
        # The mix clamped first: where its offsets run it past black or white, the picked detail would be clipped
        # away again with it. Only its residual is kept, so only that is computed.
        picked = [lowpass(fused.clamp(0, 1), levels, self.kernel)]
        for i in reversed(range(levels)):
            # E(A) - E(B) in one 3x3 mean (it is linear): half the pooling
            margin = F.avg_pool2d(self._luma_abs(pa[i]) - self._luma_abs(pb[i]), 3, 1, 1, count_include_pad=False)
            w = torch.sigmoid(self.log_gain[i].exp() * margin + _up(t, margin))
            picked.insert(0, pb[i] + w * (pa[i] - pb[i]))
        return collapse(picked)


class DeFusionFast(nn.Module):
    """forward(a, b) -> Decomposition(common, unique_a, unique_b, fused), each Bx3xHxW, any H and W."""

    def __init__(self, cfg: FastConfig = FastConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.ch
        f1, f2, f3 = c(24), c(48), c(64)
        self.encoder = FastEncoder(cfg)
        self.ensembler = nn.Sequential(conv(2 * f3, c(64)), conv(c(64), c(64)))
        ens = c(64)
        self.common_decoder = FastDecoder((ens + 2 * f3, 2 * f2, 2 * f1), (c(48), c(32), 16))
        self.unique_decoder = FastDecoder((ens + f3, f2, f1), (c(48), c(32), 16))
        self.head_common, self.head_unique = (nn.Conv2d(16, COEFFS, 3, padding=1) for _ in range(2))
        self.head_fused = DifferenceHead() if cfg.decision_map else nn.Conv2d(16, COEFFS, 3, padding=1)
        self.head_difference = DifferenceHead() if cfg.difference else None
        self.head_detail = nn.Conv2d(16, 2, 3, padding=1) if cfg.detail else None
        self.head_pick = DetailPick() if cfg.pick else None
        init_he_fan_out(self)
        if self.head_difference is not None:
            nn.init.zeros_(self.head_difference.c2.weight)  # d = 0: starts as the affine head it extends
        if self.head_detail is not None:  # ka = kb = 0: likewise
            nn.init.zeros_(self.head_detail.weight)
            nn.init.zeros_(self.head_detail.bias)
        if self.head_pick is not None:  # t = 0: the Laplacian pyramid's rule
            nn.init.zeros_(self.head_pick.bias.c2.weight)
        for h in (self.head_common, self.head_unique, self.head_fused):
            if isinstance(h, DifferenceHead):
                continue  # odd by construction, no bias to set
            # Start every head as the plain average of the sources: a sane image from the first step.
            nn.init.normal_(h.weight, std=1e-3)
            with torch.no_grad():
                h.bias.copy_(torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0]))

    def embed(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three 16-channel embeddings (common, unique a, unique b) at quarter resolution."""
        # Halves by chunk(2), not by the batch size: a traced graph (OpenVINO's int8 network) then keeps any batch.
        f1, f2, f3 = self.encoder(torch.cat([a, b], 0))
        (f1a, f1b), (f2a, f2b), (f3a, f3b) = f1.chunk(2), f2.chunk(2), f3.chunk(2)
        fc0 = self.ensembler(torch.cat([f3a, f3b], 1))
        e_c = self.common_decoder([fc0, f3a, f3b], [f2a, f2b], [f1a, f1b])
        e_ua, e_ub = self.unique_decoder([torch.cat([fc0, fc0], 0), f3], [f2], [f1]).chunk(2)
        return e_c, e_ua, e_ub

    @staticmethod
    def _mix(coeffs: torch.Tensor, a: torch.Tensor, b: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
        """Upsample the quarter-resolution mix to the sources' size and apply it there; a difference term d (a - b)
        joins the source weights before upsampling (bilinear is linear), so it costs no full-resolution pass."""
        # Coefficient 0 weighs the first argument: the unique head's own source (its two calls swap a and b).
        # Split before upsampling (bilinear is per channel, so the result is the same): slicing the
        # full-resolution maps instead makes OpenVINO copy each of them.
        wa, wb, offset = coeffs.split((1, 1, 3), 1)
        if d is not None:
            wa, wb = wa + d, wb - d
        return _up(wa, a) * a + _up(wb, a) * b + _up(offset, a)

    def _fuse(self, e_c: torch.Tensor, e_ua: torch.Tensor, e_ub: torch.Tensor, a: torch.Tensor,
              b: torch.Tensor) -> torch.Tensor:
        if not self.cfg.decision_map:
            e_f = e_c + e_ua + e_ub
            d = None if self.head_difference is None else self.head_difference(e_ua, e_ub)
            fused = self._mix(self.head_fused(e_f), a, b, d)
            if self.head_detail is not None:
                ka, kb = (_up(k, a) for k in self.head_detail(e_f).split(1, 1))
                fused = fused + ka * _fine(a) + kb * _fine(b)
            return fused if self.head_pick is None else self.head_pick(fused, a, b, e_ua, e_ub)
        # Logits upsampled, then the sigmoid: boundaries as sharp as the quarter-resolution map allows.
        logits = F.interpolate(self.head_fused(e_ua, e_ub), size=a.shape[-2:], mode="bilinear", align_corners=False)
        return b + torch.sigmoid(logits) * (a - b)

    def forward(self, a: torch.Tensor, b: torch.Tensor, activate: bool = True) -> Decomposition:
        """activate=False returns pre-ReLU outputs (training takes its losses there, as for the paper network)."""
        e_c, e_ua, e_ub = self.embed(a, b)
        outs = (self._mix(self.head_common(e_c), a, b), self._mix(self.head_unique(e_ua), a, b),
                self._mix(self.head_unique(e_ub), b, a), self._fuse(e_c, e_ua, e_ub, a, b))
        return Decomposition(*(o if not activate else F.relu(o) for o in outs))

    def fused(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.relu(self._fuse(*self.embed(a, b), a, b))

    def with_fused_head(self, decision_map: bool, difference: bool, detail: bool = False,
                        pick: bool = False) -> "DeFusionFast":
        """The same network with a new fused head (training from affine weights): a fresh decision map, or the
        affine head kept and a difference, detail and/or pick term added at its start (terms it has are kept)."""
        new = DeFusionFast(FastConfig(self.cfg.width, decision_map=decision_map, difference=difference, detail=detail,
                                      pick=pick))
        fresh = ("head_fused.", "head_difference.", "head_detail.", "head_pick.") if decision_map else \
            tuple(f"head_{k}." for k in ("difference", "detail", "pick") if not getattr(self.cfg, k))
        kept = {k: v for k, v in self.state_dict().items() if not k.startswith(fresh)}
        new.load_state_dict(kept, strict=False)
        new.variant = getattr(self, "variant", "defusion_fast")
        return new
