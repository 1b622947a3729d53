"""Shake-Shake (k branches) and ShakeDrop, as in Zela et al.'s code (BOHB_SPEC §5.2).

Both are autograd functions whose forward and backward use different random weights. Random
numbers come from torch's default generator on the tensor's device, so a seeded CPU run is
reproducible, and no host-device synchronisation is needed on CUDA (the ShakeDrop gate is a tensor,
not a Python bool).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd import Function


class _ShakeShake(Function):
    @staticmethod
    def forward(ctx: Any, alpha: Tensor, beta: Tensor, *branches: Tensor) -> Tensor:
        ctx.save_for_backward(beta)
        out = alpha[0] * branches[0]
        for i in range(1, len(branches)):
            out = out + alpha[i] * branches[i]
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (beta,) = ctx.saved_tensors
        return (None, None, *(beta[i] * grad for i in range(beta.shape[0])))


def shake_shake(branches: list[Tensor], training: bool) -> Tensor:
    """Combine k branch outputs with per-image weights: softmax over branches of U(0,1) draws.

    Forward uses alpha, backward beta (independent draws). At eval time the weights are the
    softmax of ones, i.e. the plain average.
    """
    k = len(branches)
    x = branches[0]
    if not training:
        out = branches[0]
        for b in branches[1:]:
            out = out + b
        return out / k
    shape = (k, x.shape[0], 1, 1, 1)
    alpha = torch.softmax(torch.rand(shape, device=x.device, dtype=x.dtype), dim=0)
    beta = torch.softmax(torch.rand(shape, device=x.device, dtype=x.dtype), dim=0)
    return _ShakeShake.apply(alpha, beta, *branches)


class _ShakeDrop(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, forward_scale: Tensor, backward_scale: Tensor) -> Tensor:
        ctx.save_for_backward(backward_scale)
        return x * forward_scale

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (backward_scale,) = ctx.saved_tensors
        return grad * backward_scale, None, None


def shake_drop(x: Tensor, death_rate: float, training: bool) -> Tensor:
    """ShakeDrop of a single-branch output.

    One gate per mini-batch, kept with probability 1 - death_rate. A dropped gate scales the
    forward by alpha ~ U(-1, 1) and the backward by beta ~ U(0, 1), per image. At eval time the
    output is x * (1 - death_rate).
    """
    if not training:
        return x * (1.0 - death_rate)
    if death_rate <= 0.0:
        return x
    n = x.shape[0]
    keep = (torch.rand(1, device=x.device) > death_rate).to(x.dtype)
    alpha = torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1
    beta = torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)
    forward_scale = keep + (1 - keep) * alpha
    backward_scale = keep + (1 - keep) * beta
    return _ShakeDrop.apply(x, forward_scale, backward_scale)
