"""The multi-branch ResNet of Zela et al. 2018 (BOHB_SPEC §5.2; authors' ``macro_model.py``).

Stem conv3x3 + BN; three stages of residual blocks (stride 1, 2, 2); each block sums
``res_branches`` branches of [ReLU, conv3x3, BN, ReLU, conv3x3, BN] with Shake-Shake (several
branches) or ShakeDrop (one branch), plus an identity or Shake-Shake shortcut; head ReLU, global
average pool, linear. The authors pool with a fixed 8x8 window, which equals global pooling for
32x32 inputs; global pooling makes any input size work (Fashion-MNIST 28x28 gives 7x7 maps).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.hparams import TrainConfig
from trainer.shake import shake_drop, shake_shake

STAGE_STRIDES = (1, 2, 2)


class ModelError(ValueError):
    """The config cannot be built into a network (a bad config, not a bug)."""


class ShortcutProjection(nn.Module):
    """Shake-Shake shortcut on a shape change: two 1x1-conv paths (the second shifted by one
    pixel) of half the channels each, concatenated, then BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_ch, out_ch // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(in_ch, out_ch - out_ch // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        # AvgPool2d(1, stride) is plain subsampling
        a = x[:, :, :: self.stride, :: self.stride]
        b = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, :: self.stride, :: self.stride]
        return self.bn(torch.cat([self.conv1(a), self.conv2(b)], dim=1))


def _branch(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
        nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
    )


class ResidualBlock(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, stride: int, branches: int, death_rate: float
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(_branch(in_ch, out_ch, stride) for _ in range(branches))
        self.death_rate = death_rate
        self.shortcut: nn.Module = (
            ShortcutProjection(in_ch, out_ch, stride)
            if in_ch != out_ch or stride != 1
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        if len(outs) == 1:
            out = shake_drop(outs[0], self.death_rate, self.training)
        else:
            out = shake_shake(outs, self.training)
        return out + self.shortcut(x)


class Network(nn.Module):
    def __init__(self, cfg: TrainConfig, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        widths = cfg.widths()
        if min(widths) < 1:
            raise ModelError(
                f"stage widths {widths} (initial_filters x widen factors, rounded) must be >= 1: "
                "raise initial_filters or the widen_factor_i"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, cfg.initial_filters, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.initial_filters),
        )
        layers: list[nn.Module] = []
        in_ch = cfg.initial_filters
        for width, blocks, branches, stride in zip(
            widths, cfg.blocks(), cfg.branches(), STAGE_STRIDES, strict=True
        ):
            for i in range(blocks):
                layers.append(
                    ResidualBlock(in_ch, width, stride if i == 0 else 1, branches, cfg.death_rate)
                )
                in_ch = width
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, num_classes)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        x = F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1)
        return self.fc(x)


def _init_weights(m: nn.Module) -> None:
    # the authors' initialisation: He-normal with fan-out, BN (1, 0), linear bias 0
    if isinstance(m, nn.Conv2d):
        n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(cfg: TrainConfig, in_channels: int = 3, num_classes: int = 10) -> dict[str, Any]:
    """Parameter count and per-stage shape of a config, without training (``--describe``).

    The network is built on the meta device: no memory is allocated even for huge configs.
    """
    with torch.device("meta"):
        model = Network(cfg, in_channels, num_classes)
    stages = [
        {
            "stage": i + 1,
            "width": w,
            "blocks": n,
            "branches": b,
            "stride": s,
            "combine": "shake-shake" if b > 1 else "shakedrop",
        }
        for i, (w, n, b, s) in enumerate(
            zip(cfg.widths(), cfg.blocks(), cfg.branches(), STAGE_STRIDES, strict=True)
        )
    ]
    return {
        "params": count_params(model),
        # conventional ResNet depth: 2 convs per block, the stem and the classifier (26 for
        # Shake-Shake 26); the authors' printout, sum(2 n_i + 2), counts 4 more
        "depth": 2 * sum(cfg.blocks()) + 2,
        "initial_filters": cfg.initial_filters,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "stages": stages,
    }
