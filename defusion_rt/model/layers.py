"""Building blocks of the DeFusion network: ResNeSt split-attention bottlenecks without normalisation.

Split attention: Zhang et al., "ResNeSt: Split-Attention Networks" (arXiv 2004.08955). DeFusion uses radix 2,
cardinality 1 and no norm layers (see docs spec section 1); written here from that description.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SplitAttn(nn.Module):
    """Radix-2 split attention: a grouped 3x3 conv makes two branches, a softmax over them picks per channel.

    Written for the hardware, with the parameters of the textbook form (reshape to (B, radix, C, H, W), sum,
    softmax, multiply, sum): the softmax over two is a sigmoid of the logits' difference and the weighted sum
    `x2 + a * (x1 - x2)`, so no reduction runs over the radix axis and compilers fuse the tail into one kernel.
    The 3x3 conv runs in the form measured fastest per device type (`CONV_FORM`): "grouped" (2 groups), or
    "dense", one ordinary conv with a block-diagonal weight (2x the FLOPs, but dense GPU kernels; cuDNN's grouped
    kernel took 19% of an H200's time). Outputs match the textbook form to float rounding (tests pin it).
    """

    CONV_FORM = {"cpu": "grouped", "cuda": "dense"}  # benchmarks/split_attention.py measures the forms

    def __init__(self, channels: int, radix: int = 2, reduction: int = 4, min_attn: int = 32):
        super().__init__()
        if radix != 2:
            raise ValueError("DeFusion's split attention has radix 2")
        attn = max(channels * radix // reduction, min_attn)
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels * radix, 3, padding=1, groups=radix, bias=False)
        self.fc1 = nn.Conv2d(channels, attn, 1)
        self.fc2 = nn.Conv2d(attn, channels * radix, 1)

    def _branches(self, x: torch.Tensor) -> torch.Tensor:
        """relu(grouped conv) as (B, 2C, H, W): channels [0, C) are branch 1, [C, 2C) branch 2."""
        if self.CONV_FORM.get(x.device.type, "grouped") == "grouped":
            return F.relu(self.conv(x))
        c, half = self.channels, self.channels // 2
        w = self.conv.weight
        zero = w.new_zeros(c, c - half, 3, 3)  # group 1 reads input channels [0, half), group 2 the rest
        dense = torch.cat([torch.cat([w[:c], zero], 1), torch.cat([zero, w[c:]], 1)], 0)
        return F.relu(F.conv2d(x, dense, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels
        y = self._branches(x)
        m = y.mean(dim=(2, 3), keepdim=True)  # GAP of x1 + x2 without materialising the sum
        logits = self.fc2(F.relu(self.fc1(m[:, :c] + m[:, c:])))
        a = torch.sigmoid(logits[:, :c] - logits[:, c:])  # softmax over the two branches, branch 1's weight
        x1, x2 = y[:, :c], y[:, c:]
        return x2 + a * (x1 - x2)


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
