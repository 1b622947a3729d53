"""Learning-rate schedules and budget arithmetic (pure functions, torch-free).

Seconds budget (the paper's unit): SGDR-time, cosine annealing with warm restarts driven by
cumulative training-step time, eta_min 0, T_mul 2. The first period T0 is chosen so that the budget
ends exactly at the end of a cycle: T0 = budget / (2**k - 1) for the smallest k >= 1 with
T0 <= MAX_FIRST_PERIOD_S. With MAX_FIRST_PERIOD_S = 800 s this reproduces the authors' values for
their budgets (400 -> 400, 1200 -> 400 + 800, 3600 -> 514.29 x (1+2+4), 10800 -> 720 x (1+2+4+8));
any threshold in [720, 1200) would, and 800 keeps the first period near the authors' minimum
budget of 400 s for budgets between theirs.

Epochs budget: one cosine over the whole budget (no restart), per step.

A promotion that continues the lower rung's training (``bohb.promotion_resume``, ``continued``)
starts at the lower trial's last step and trains only the increment: an epochs budget follows the
larger budget's cosine from that step on (the learning rate jumps from ~0 back up to the cosine's
value there, 0.75 x base_lr for eta 3, then decays as a fresh run of the larger budget would); a
seconds budget starts a new SGDR cycle set over the seconds left (a warm restart, as SGDR allows;
for the authors' 400 -> 1200 s it is exactly the 800 s period a fresh 1200 s run has next).
docs/trainer.md, "Promotions that continue", compares both with a fresh run.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

MAX_FIRST_PERIOD_S = 800.0
T_MUL = 2.0


def first_period(budget_s: float, max_first_period: float = MAX_FIRST_PERIOD_S) -> float:
    """The largest T0 <= max_first_period such that the budget ends at the end of a cycle."""
    if budget_s <= 0:
        raise ValueError(f"budget {budget_s} must be > 0")
    k = 1
    while budget_s / (2**k - 1) > max_first_period:
        k += 1
    return budget_s / (2**k - 1)


def sgdr_lr(base_lr: float, t: float, t0: float, t_mul: float = T_MUL) -> float:
    """Cosine with warm restarts at time t: periods t0, t0*t_mul, t0*t_mul**2, ..."""
    period, start = t0, 0.0
    while t >= start + period:
        start += period
        period *= t_mul
    return base_lr * (1 + math.cos(math.pi * (t - start) / period)) / 2


def cosine_lr(base_lr: float, progress: float) -> float:
    """Cosine from base_lr at progress 0 to 0 at progress 1."""
    return base_lr * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2


class Schedule(BaseModel):
    """The LR schedule of one trial; stored in the checkpoint so a resume uses the same one."""

    model_config = ConfigDict(frozen=True)

    unit: Literal["epochs", "seconds"]
    base_lr: float
    budget: float  # epochs or seconds
    total_steps: int  # epochs budget: steps to run; seconds budget: 0 (time decides)
    t0: float = 0.0  # seconds budget: first SGDR period
    # seconds budget continued from a lower rung: the training seconds it started from (the SGDR
    # clock counts from here); 0 for a trial that starts from scratch
    start_seconds: float = 0.0

    @classmethod
    def create(
        cls, unit: Literal["epochs", "seconds"], base_lr: float, budget: float, steps_per_epoch: int
    ) -> Schedule:
        if unit == "seconds":
            t0 = first_period(budget)
            return cls(unit=unit, base_lr=base_lr, budget=budget, total_steps=0, t0=t0)
        return cls(
            unit=unit,
            base_lr=base_lr,
            budget=budget,
            total_steps=total_steps(budget, steps_per_epoch),
        )

    def continued(self, budget: float, steps_per_epoch: int, seconds_done: float) -> Schedule:
        """The schedule of a promotion to ``budget`` that continues this (finished) one, whose
        training used ``seconds_done`` seconds."""
        if not budget > self.budget:
            raise ValueError(f"a continued budget ({budget}) must exceed the lower one's")
        if self.unit == "seconds":
            left = max(budget - seconds_done, 1e-9)  # a last step may overshoot a tiny increment
            return self.model_copy(
                update={"budget": budget, "t0": first_period(left), "start_seconds": seconds_done}
            )
        return self.model_copy(
            update={"budget": budget, "total_steps": total_steps(budget, steps_per_epoch)}
        )

    def lr(self, step: int, seconds: float) -> float:
        """LR for the step about to run, given steps done and training seconds used."""
        if self.unit == "seconds":
            return sgdr_lr(self.base_lr, max(0.0, seconds - self.start_seconds), self.t0)
        return cosine_lr(self.base_lr, step / self.total_steps)

    def done(self, step: int, seconds: float) -> bool:
        """Stop after the first step at which the budget is reached."""
        if self.unit == "seconds":
            return seconds >= self.budget
        return step >= self.total_steps


def total_steps(epochs: float, steps_per_epoch: int) -> int:
    """Steps for a (possibly fractional) epochs budget; at least one."""
    return max(1, round(epochs * steps_per_epoch))
