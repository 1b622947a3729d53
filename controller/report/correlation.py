"""Spearman rank correlation of losses between every pair of budgets (pure).

Like HpBandSter's ``correlation_across_budgets``: for budgets a < b, the configurations evaluated
on both (finite losses) are ranked on each budget and correlated. Fewer than ``MIN_SHARED`` shared
configurations give "not enough data", never a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel
from scipy.stats import spearmanr

MIN_SHARED = 3
NOT_ENOUGH = "not enough data"


class BudgetPair(BaseModel):
    budget_a: float
    budget_b: float
    n: int  # configurations evaluated on both budgets with a finite loss
    rho: float | None  # None whenever `note` says why
    p_value: float | None
    note: str | None


def losses_by_budget(
    rows: Iterable[tuple[str, float, float | None]],
) -> dict[float, dict[str, float]]:
    """(config id, budget, loss) → budget → config id → loss; non-finite losses are dropped.

    A config evaluated twice on one budget (a rerun) keeps its last finite loss.
    """
    table: dict[float, dict[str, float]] = {}
    for config_id, budget, loss in rows:
        if loss is not None and math.isfinite(loss):
            table.setdefault(budget, {})[config_id] = loss
    return table


def correlate(
    a: dict[str, float], b: dict[str, float], budget_a: float, budget_b: float
) -> BudgetPair:
    shared = sorted(a.keys() & b.keys())
    n = len(shared)
    if n < MIN_SHARED:
        return BudgetPair(
            budget_a=budget_a, budget_b=budget_b, n=n, rho=None, p_value=None, note=NOT_ENOUGH
        )
    xs = [a[k] for k in shared]
    ys = [b[k] for k in shared]
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        return BudgetPair(
            budget_a=budget_a,
            budget_b=budget_b,
            n=n,
            rho=None,
            p_value=None,
            note="undefined: all losses equal on one budget",
        )
    result = spearmanr(xs, ys)
    rho, p = float(result.statistic), float(result.pvalue)
    return BudgetPair(
        budget_a=budget_a,
        budget_b=budget_b,
        n=n,
        rho=rho if math.isfinite(rho) else None,
        p_value=p if math.isfinite(p) else None,
        note=None if math.isfinite(rho) else "undefined",
    )


def correlation_across_budgets(table: dict[float, dict[str, float]]) -> list[BudgetPair]:
    """Every pair of budgets (a < b) in ascending order of a, then b."""
    budgets = sorted(table)
    return [
        correlate(table[a], table[b], a, b) for i, a in enumerate(budgets) for b in budgets[i + 1 :]
    ]
