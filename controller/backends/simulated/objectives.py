"""What a simulated trial reports: the loss of a configuration at a budget.

An objective is a pure function of (config, budget, seed), so a simulated sweep is reproducible
and a relaunched trial reports what its first attempt would have. ``SyntheticObjective`` is the
synthetic trainer's own loss (``trainer.synthetic.synthetic_loss``): a simulated sweep and a local
sweep of the synthetic trainer see the same losses, and differ only in time. Other objectives (a
surrogate fitted on a benchmark's table, say) are plugged in from Python.
"""

from __future__ import annotations

from typing import Any, Protocol

from trainer.synthetic import synthetic_loss

__all__ = ["Objective", "SyntheticObjective"]


class Objective(Protocol):
    def loss(self, config: dict[str, Any], budget: float, seed: int) -> float | None:
        """The validation error in [0, 1] at ``budget``; None = the run failed."""
        ...


class SyntheticObjective:
    """``synthetic_loss(config, budget, max_budget, seed)``; ``max_budget`` None = the trial's own
    budget, as the synthetic trainer uses when ``KUBOHB_MAX_BUDGET`` is unset."""

    def __init__(self, max_budget: float | None = None) -> None:
        if max_budget is not None and not max_budget > 0:
            raise ValueError(f"SyntheticObjective: max_budget must be > 0, got {max_budget}")
        self.max_budget = max_budget

    def loss(self, config: dict[str, Any], budget: float, seed: int) -> float | None:
        max_budget = budget if self.max_budget is None else self.max_budget
        return synthetic_loss(config, budget, max_budget, seed)
