"""Per budget (rung): trial counts by state and the best loss (pure, on TrialRows).

The markdown summary's loss-per-budget table, the JUnit testcase of each rung and the baseline
gate's comparison all read these rows, so the three agree on what "the best loss at a budget" is.
"""

from __future__ import annotations

from pydantic import BaseModel

from controller.report.load import TrialRow


class BudgetStats(BaseModel):
    budget: float
    ok: int  # finished with a finite loss: a result
    failed: int
    running: int  # no result.json yet
    wall_seconds: float  # Σ info.wall_seconds of the finished trials on this budget
    best_loss: float | None  # the lowest loss of the ok trials; None when there is none
    best_config_id: str | None
    best_trial_id: str | None


def budget_stats(trials: list[TrialRow]) -> list[BudgetStats]:
    """One row per budget that has any trial (running ones included), smallest budget first."""
    by_budget: dict[float, list[TrialRow]] = {}
    for t in trials:
        by_budget.setdefault(t.budget, []).append(t)
    out = []
    for budget, rows in sorted(by_budget.items()):
        results = [r for r in rows if r.status == "ok" and r.loss is not None]
        # ties go to the smaller trial id, so the row is the same whatever order the store lists
        best = min(results, key=lambda r: (r.loss, r.trial_id)) if results else None
        out.append(
            BudgetStats(
                budget=budget,
                ok=len(results),
                failed=sum(r.status == "failed" for r in rows),
                running=sum(r.status == "running" for r in rows),
                wall_seconds=sum(r.wall_seconds or 0.0 for r in rows if r.status != "running"),
                best_loss=best.loss if best else None,
                best_config_id=best.config_id if best else None,
                best_trial_id=best.trial_id if best else None,
            )
        )
    return out


def unit_of(trials: list[TrialRow]) -> str:
    """The sweep's budget unit ("epochs" when no trial says; "a/b" when trials disagree)."""
    units = sorted({t.budget_unit for t in trials})
    return units[0] if len(units) == 1 else "/".join(units) or "epochs"


def best_by_budget(stats: list[BudgetStats]) -> dict[float, float]:
    """Budget → best loss, for the budgets that have a result."""
    return {s.budget: s.best_loss for s in stats if s.best_loss is not None}
