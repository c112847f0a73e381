"""The DeFusion network (Liang et al., ECCV 2022), official inference topology.

A Siamese split-attention encoder reads both sources; an ensembler mixes their deepest features; a common decoder
(skips from both encoders) and a unique decoder (run once per source, shared weights) produce 16-channel
embeddings; three heads map them to the common image, the unique images and the fused image. Shapes below are for
a 3x256x256 pair at width 1.0.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Bottleneck, head, init_he_fan_out, make_layer


@dataclass(frozen=True)
class DeFusionConfig:
    width: float = 1.0  # multiplies every layer's width; 1.0 is the paper's network (7,874,473 parameters)
    # Zero the last 1x1 conv of every residual branch at initialisation, so each block starts as its shortcut
    # (SkipInit/"zero-gamma"). Without normalisation layers the He init alone made activations grow to ~400 at the
    # output and our CPU run collapsed to constant outputs (dead ReLUs); the trained topology is unchanged.
    zero_init_residual: bool = True

    def ch(self, planes: int) -> int:
        """Scaled width, kept even so the radix-2 grouped conv splits evenly."""
        return max(2, int(round(planes * self.width / 2)) * 2)


class Decomposition(NamedTuple):
    common: torch.Tensor
    unique_a: torch.Tensor
    unique_b: torch.Tensor
    fused: torch.Tensor


class Encoder(nn.Module):
    def __init__(self, cfg: DeFusionConfig):
        super().__init__()
        c = cfg.ch
        self.stem_conv = nn.Conv2d(3, c(16), 3, padding=1)
        self.stem = make_layer(c(16), c(8), 6, avd=True)                    # 32 x 256^2
        self.pool = nn.MaxPool2d(3, 2, padding=1)                           # 32 x 128^2
        self.l1 = make_layer(c(8) * 4, c(16), 6)                            # f1: 64 x 128^2
        self.l2 = make_layer(c(16) * 4, c(32), 4, 2, avd=True, avg_down=True)  # f2: 128 x 64^2
        self.l3 = make_layer(c(32) * 4, c(64), 4, 2, avd=True, avg_down=True)  # f3: 256 x 32^2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = self.stem(F.relu(self.stem_conv(x)))
        f1 = self.l1(self.pool(s))
        f2 = self.l2(f1)
        return s, f1, f2, self.l3(f2)


class Decoder(nn.Module):
    """Three up-stages, each: concat skips -> layer -> bilinear resize to the next skip's size; then a last layer."""

    def __init__(self, in_chs: tuple[int, int, int], planes: tuple[int, int, int, int], blocks: tuple[int, ...]):
        super().__init__()
        p = planes
        self.up1 = make_layer(in_chs[0], p[0], blocks[0])
        self.up2 = make_layer(p[0] * 4 + in_chs[1], p[1], blocks[1])
        self.up3 = make_layer(p[1] * 4 + in_chs[2], p[2], blocks[2])
        self.last = make_layer(p[2] * 4, p[3], blocks[3])

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, deep: list[torch.Tensor], mid: list[torch.Tensor], shallow: list[torch.Tensor],
                stem: torch.Tensor) -> torch.Tensor:
        x = self._up(self.up1(torch.cat(deep, 1)), mid[0])
        x = self._up(self.up2(torch.cat([x, *mid], 1)), shallow[0])
        x = self._up(self.up3(torch.cat([x, *shallow], 1)), stem)
        return self.last(x)


class DeFusion(nn.Module):
    """forward(a, b) -> Decomposition(common, unique_a, unique_b, fused), each Bx3xHxW, any H and W."""

    def __init__(self, cfg: DeFusionConfig = DeFusionConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.ch
        f1, f2, f3 = c(16) * 4, c(32) * 4, c(64) * 4
        self.encoder = Encoder(cfg)
        self.ensembler = make_layer(2 * f3, c(256), 4)                       # fc0: 1024 x 32^2
        ens = c(256) * 4
        self.common_decoder = Decoder((ens + 2 * f3, 2 * f2, 2 * f1), (c(64), c(16), c(4), c(4)), (2, 2, 2, 2))
        self.unique_decoder = Decoder((ens + f3, f2, f1), (c(96), c(32), c(16), c(4)), (4, 4, 6, 6))
        emb = c(4) * 4                                                       # 16-channel embeddings
        self.head_common, self.head_unique, self.head_fused = head(emb), head(emb), head(emb)
        init_he_fan_out(self)
        if cfg.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.conv3.weight)

    def embed(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three 16-channel embeddings (common, unique a, unique b) at input resolution."""
        n = a.shape[0]
        s, f1, f2, f3 = self.encoder(torch.cat([a, b], 0))  # one encoder pass for both sources
        sa, (f1a, f1b), (f2a, f2b), (f3a, f3b) = s[:n], f1.split(n), f2.split(n), f3.split(n)
        fc0 = self.ensembler(torch.cat([f3a, f3b], 1))
        e_c = self.common_decoder([fc0, f3a, f3b], [f2a, f2b], [f1a, f1b], sa)
        # The unique decoder shares weights across sources: run it once on the batch of both.
        e_u = self.unique_decoder([torch.cat([fc0, fc0], 0), f3], [f2], [f1], s)
        return e_c, e_u[:n], e_u[n:]

    def forward(self, a: torch.Tensor, b: torch.Tensor, activate: bool = True) -> Decomposition:
        """activate=False returns the heads' pre-ReLU outputs: training takes its losses there, so a head
        pushed below zero everywhere still gets a gradient (a dead ReLU head never recovers)."""
        e_c, e_ua, e_ub = self.embed(a, b)
        heads = [(self.head_common, e_c), (self.head_unique, e_ua), (self.head_unique, e_ub),
                 (self.head_fused, e_c + e_ua + e_ub)]
        return Decomposition(*(h(e) if activate else h[0](e) for h, e in heads))

    def fused(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The fused image alone (what engines export and compile)."""
        e_c, e_ua, e_ub = self.embed(a, b)
        return self.head_fused(e_c + e_ua + e_ub)


class FusedOnly(nn.Module):
    """Wraps any registered network to return the fused image only: the shape engines export and compile."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net.fused(a, b)

    def grey(self) -> "FusedOnly":
        """A copy that takes one-channel sources (Bx1xHxW) and fuses them as it fuses a grey image given as three
        equal channels: the encoder's first convolution then computes sum_c w[:, c] * x, so its weights summed over
        the input channels see the one channel and give the same features, with a third of the input to move.
        Everything after it broadcasts (the real-time network's mix of the sources too)."""
        net = copy.deepcopy(self.net)
        first = next(m for m in net.encoder.modules() if isinstance(m, nn.Conv2d))
        w = first.weight
        first.weight = nn.Parameter(w.float().sum(1, keepdim=True).to(w.dtype), requires_grad=False)
        first.in_channels = 1
        return FusedOnly(net)
