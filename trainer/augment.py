"""Batched augmentation on the training device: random crop (pad 4), flip, Cutout, mixup.

The whole uint8 data set lives on the device, so a batch is an index gather plus a few tensor ops:
no per-image Python, no worker processes, no host-to-device copy per step. The order follows the
authors' pipeline: crop and flip on the raw image (zero padding), normalise, then Cutout (zeroing
after normalisation, i.e. the mean colour), then mixup in the loop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

PAD = 4


class Augment:
    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        cutout: int,
        device: torch.device,
        pad: int = PAD,
    ) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.cutout = cutout
        self.pad = pad

    def normalise(self, x: Tensor) -> Tensor:
        return (x.float() - self.mean) * self.inv_std

    def train_batch(self, x: Tensor, g: torch.Generator) -> Tensor:
        """Augmented, normalised float batch from uint8 images (N, C, H, W)."""
        n, c, h, w = x.shape
        dev = x.device
        p = self.pad
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n, 1), generator=g, device=dev)
        dx = torch.randint(0, 2 * p + 1, (n, 1), generator=g, device=dev)
        flip = torch.rand(n, 1, generator=g, device=dev) < 0.5
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        rows = dy + ar_h  # (n, h)
        cols = dx + torch.where(flip, (w - 1) - ar_w, ar_w)  # flip by reversing the column order
        out = padded[
            torch.arange(n, device=dev).view(n, 1, 1, 1),
            torch.arange(c, device=dev).view(1, c, 1, 1),
            rows.view(n, 1, h, 1),
            cols.view(n, 1, 1, w),
        ]
        out = self.normalise(out)
        if self.cutout > 0:
            # DeVries & Taylor: centre anywhere in the image, the square clipped at the borders
            cy = torch.randint(0, h, (n, 1, 1), generator=g, device=dev)
            cx = torch.randint(0, w, (n, 1, 1), generator=g, device=dev)
            half = self.cutout // 2
            inside_y = (ar_h.view(1, h, 1) >= cy - half) & (ar_h.view(1, h, 1) < cy + half)
            inside_x = (ar_w.view(1, 1, w) >= cx - half) & (ar_w.view(1, 1, w) < cx + half)
            out = out * (~(inside_y & inside_x)).unsqueeze(1).to(out.dtype)
        return out


def mixup(
    x: Tensor, y: Tensor, alpha: float, g: torch.Generator, rng: np.random.Generator
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Mixup (Zhang et al.): lam ~ Beta(alpha, alpha), partner = a random permutation."""
    if alpha <= 0:
        return x, y, y, 1.0
    lam = float(rng.beta(alpha, alpha))
    index = torch.randperm(x.shape[0], generator=g, device=x.device)
    return lam * x + (1 - lam) * x[index], y, y[index], lam
