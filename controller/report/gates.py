"""CI gates on a sweep's result: pure checks that say, in one line, what they compared.

``--fail-if-loss-above X`` checks the report's incumbent (the best loss at the largest budget
that has a result: ``rank_configs``' first config). ``--baseline URL --fail-if-worse-by D``
compares this sweep's best loss with the baseline's at the largest budget both have a result on
(the incumbents' budgets when they agree), since a loss at 27 epochs and one at 81 measure
different things. A gate that cannot compare (no result, no shared budget) fails: a CI gate that
cannot confirm a result must not let it through.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from controller.report.budgets import BudgetStats, best_by_budget
from controller.report.incumbent import RankedConfig

GateName = Literal["fail-if-loss-above", "fail-if-worse-by"]


class GateResult(BaseModel):
    gate: GateName
    passed: bool
    line: str  # what the CLI prints, the JUnit failure message, the markdown row
    limit: float  # X or D as given
    loss: float | None  # this sweep's loss that was compared
    budget: float | None  # the budget it was compared at
    baseline: str | None = None  # the baseline sweep's URL
    baseline_loss: float | None = None


def exceeds(value: float, limit: float) -> bool:
    """value > limit, where a difference of rounding (0.8 - 0.7 against 0.1) is not "more"."""
    return value > limit and not math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)


def _num(x: float) -> str:
    return repr(float(x))  # the shortest exact form: a gate line must not round 0.20001 to 0.2


def _budgets(budgets: list[float]) -> str:
    return ", ".join(f"{b:g}" for b in sorted(budgets)) or "none"


def loss_gate(incumbent: RankedConfig | None, budget_unit: str, limit: float) -> GateResult:
    head = f"gate --fail-if-loss-above {_num(limit)}"
    if incumbent is None:
        return GateResult(
            gate="fail-if-loss-above",
            passed=False,
            line=f"{head}: FAIL: no incumbent (no trial of the sweep has a loss yet)",
            limit=limit,
            loss=None,
            budget=None,
        )
    passed = not exceeds(incumbent.loss, limit)
    verdict = "PASS" if passed else "FAIL"
    relation = "at or below" if passed else "above"
    return GateResult(
        gate="fail-if-loss-above",
        passed=passed,
        line=(
            f"{head}: {verdict}: incumbent {incumbent.config_id} (trial {incumbent.trial_id}) "
            f"loss {_num(incumbent.loss)} at budget {incumbent.budget:g} {budget_unit} "
            f"(the largest budget with a result) is {relation} {_num(limit)}"
        ),
        limit=limit,
        loss=incumbent.loss,
        budget=incumbent.budget,
    )


def baseline_gate(
    this: list[BudgetStats],
    baseline: list[BudgetStats],
    *,
    baseline_url: str,
    budget_unit: str,
    max_worse: float,
) -> GateResult:
    """Fails when this sweep's best loss exceeds the baseline's by more than ``max_worse``."""
    head = f"gate --fail-if-worse-by {_num(max_worse)} (baseline {baseline_url})"
    mine, theirs = best_by_budget(this), best_by_budget(baseline)
    common = mine.keys() & theirs.keys()

    def failed(why: str) -> GateResult:
        return GateResult(
            gate="fail-if-worse-by",
            passed=False,
            line=f"{head}: FAIL: {why}",
            limit=max_worse,
            loss=None,
            budget=None,
            baseline=baseline_url,
        )

    if not mine:
        return failed("no incumbent (no trial of this sweep has a loss yet)")
    if not theirs:
        return failed("the baseline has no trial with a loss")
    if not common:
        return failed(
            f"no budget has a result in both sweeps (this sweep: {_budgets(list(mine))}; "
            f"baseline: {_budgets(list(theirs))} {budget_unit})"
        )
    budget = max(common)
    loss, base = mine[budget], theirs[budget]
    diff = loss - base
    passed = not exceeds(diff, max_worse)
    verdict = "PASS" if passed else "FAIL"
    change = f"worse by {_num(diff)}" if diff > 0 else f"better by {_num(-diff)}"
    if diff == 0:
        change = "equal"
    where = f"at budget {budget:g} {budget_unit}"
    if max(mine) != budget or max(theirs) != budget:
        where += (
            f" (the largest budget both have; largest with a result: this sweep "
            f"{max(mine):g}, baseline {max(theirs):g})"
        )
    allowed = "within" if passed else "more than"
    return GateResult(
        gate="fail-if-worse-by",
        passed=passed,
        line=(
            f"{head}: {verdict}: best loss {_num(loss)} vs baseline {_num(base)} {where}: "
            f"{change}, {allowed} the {_num(max_worse)} allowed"
        ),
        limit=max_worse,
        loss=loss,
        budget=budget,
        baseline=baseline_url,
        baseline_loss=base,
    )
