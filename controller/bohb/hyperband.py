"""The Hyperband budget schedule exactly as HpBandSter 0.7.4 computes it (spec §1.1).

Two choices are deliberate:
- the first-stage size uses HpBandSter's floor form ``floor((s_max+1)/(s+1)) * eta**s`` (not the
  paper's ceil), so brackets for 1..81 are 81/27/9/6/5 as in the Hyperband paper's Table 1;
- the number of budgets is computed with a tolerance: HpBandSter's ``-int(log(min/max)/log(eta))``
  turns 1..243 (eta 3) into 5 budgets starting at 3 because log(1/243)/log(3) = -4.999999999999999
  (HpBandSter issue #110). We round a ratio within 1e-9 of an integer to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_RATIO_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Bracket:
    """One successive-halving iteration: ``num_configs[i]`` configs run at ``budgets[i]``."""

    iteration: int
    s: int
    num_configs: tuple[int, ...]
    budgets: tuple[float, ...]
    first_rung: int  # index of budgets[0] in the schedule's budget list

    @property
    def total_budget(self) -> float:
        return sum(n * b for n, b in zip(self.num_configs, self.budgets, strict=True))


@dataclass(frozen=True)
class Schedule:
    min_budget: float
    max_budget: float
    eta: float = 3

    def __post_init__(self) -> None:
        if not 0 < self.min_budget <= self.max_budget:
            raise ValueError(
                f"min_budget ({self.min_budget}) must be > 0 and <= max_budget ({self.max_budget})"
            )
        if not self.eta > 1:
            raise ValueError(f"eta ({self.eta}) must be > 1")

    @property
    def max_sh_iter(self) -> int:
        """Number of budgets (s_max + 1)."""
        ratio = math.log(self.max_budget / self.min_budget) / math.log(self.eta)
        nearest = round(ratio)
        s_max = nearest if abs(ratio - nearest) < _RATIO_TOLERANCE else math.floor(ratio)
        return int(s_max) + 1

    @property
    def budgets(self) -> list[float]:
        """Ascending budgets max_budget * eta**-k, k = s_max..0.

        Computed as a division by eta**k so exact cases stay exact (10800 / 27 = 400.0, where
        HpBandSter's ``max * eta**-k`` may give 399.99999999999994).
        """
        n = self.max_sh_iter
        out = [float(self.max_budget) / float(self.eta) ** k for k in range(n - 1, -1, -1)]
        if math.isclose(out[0], self.min_budget, rel_tol=1e-12):
            out[0] = float(self.min_budget)
        return out

    def bracket(self, iteration: int) -> Bracket:
        n = self.max_sh_iter
        s = n - 1 - (iteration % n)
        n0 = int(math.floor(n / (s + 1)) * self.eta**s)
        num_configs = tuple(max(int(n0 * self.eta ** (-i)), 1) for i in range(s + 1))
        return Bracket(
            iteration=iteration,
            s=s,
            num_configs=num_configs,
            budgets=tuple(self.budgets[-(s + 1) :]),
            first_rung=n - 1 - s,
        )
