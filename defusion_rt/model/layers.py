"""Building blocks of the DeFusion network: ResNeSt split-attention bottlenecks without normalisation.

Split attention: Zhang et al., "ResNeSt: Split-Attention Networks" (arXiv 2004.08955). DeFusion uses radix 2,
cardinality 1 and no norm layers (see docs spec section 1); written here from that description.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitAttn(nn.Module):
    """Radix-2 split attention: a grouped 3x3 conv makes two branches, a softmax over them picks per channel."""

    def __init__(self, channels: int, radix: int = 2, reduction: int = 4, min_attn: int = 32):
        super().__init__()
        attn = max(channels * radix // reduction, min_attn)
        self.radix = radix
        self.conv = nn.Conv2d(channels, channels * radix, 3, padding=1, groups=radix, bias=False)
        self.fc1 = nn.Conv2d(channels, attn, 1)
        self.fc2 = nn.Conv2d(attn, channels * radix, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = F.relu(self.conv(x))
        x = x.reshape(b, self.radix, -1, h, w)  # (B, radix, C, H, W)
        gap = x.sum(dim=1).mean(dim=(2, 3), keepdim=True)
        attn = self.fc2(F.relu(self.fc1(gap)))  # (B, radix*C, 1, 1)
        attn = attn.reshape(b, self.radix, -1, 1, 1).softmax(dim=1)
        return (x * attn).sum(dim=1)


class Bottleneck(nn.Module):
    """1x1 -> split attention -> optional 3x3 avg-pool ("avd", carries the stride) -> 1x1, plus shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, avd: bool = False, shortcut: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.splat = SplitAttn(planes)
        self.avd = nn.AvgPool2d(3, stride, padding=1) if avd else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.avd(self.splat(F.relu(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


def make_layer(in_ch: int, planes: int, blocks: int, stride: int = 1, avd: bool = False,
               avg_down: bool = False) -> nn.Sequential:
    """`blocks` bottlenecks; only the first changes width or stride. Encoder layers use an avg-pool shortcut."""
    out_ch = planes * Bottleneck.expansion
    shortcut = None
    if stride != 1 or in_ch != out_ch:
        pool = [nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)] if avg_down and stride > 1 else []
        shortcut = nn.Sequential(*pool, nn.Conv2d(in_ch, out_ch, 1, bias=False))
    layers = [Bottleneck(in_ch, planes, stride, avd, shortcut)]
    layers += [Bottleneck(out_ch, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def head(in_ch: int) -> nn.Sequential:
    """A projection head: 3x3 conv to RGB and ReLU (no sigmoid; outputs are clamped when saved)."""
    return nn.Sequential(nn.Conv2d(in_ch, 3, 3, padding=1), nn.ReLU())


def init_he_fan_out(module: nn.Module) -> None:
    """Conv weights ~ N(0, sqrt(2 / (k*k*C_out))); biases keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
