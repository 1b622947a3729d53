"""Incumbent trajectory, configuration ranking and compute use over time (pure, on TrialRows).

The incumbent follows HpBandSter's ``get_incumbent_trajectory`` (bigger budgets are better,
budgets never decrease): in order of finishing, a result becomes the incumbent when its budget is
larger than the incumbent's, or when its loss is lower on a budget at least as large.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from controller.report.load import TrialMeta, TrialRow


class IncumbentPoint(BaseModel):
    time_s: float  # since the sweep's first start
    loss: float
    budget: float
    trial_id: str
    config_id: str


class RankedConfig(BaseModel):
    rank: int
    config_id: str
    trial_id: str  # the trial that gave `loss` on `budget`
    budget: float  # the largest budget this config has a finite loss on
    loss: float
    loss_per_budget: dict[float, float]
    params: int | None
    config: dict[str, Any]
    # from the controller's state, when there is one: whether BOHB's model proposed the config,
    # and over all its trials the seconds queued and the preemptions
    model_based: bool | None = None
    queued_s: float | None = None
    preemptions: int | None = None


class UsagePoint(BaseModel):
    time_s: float
    running: int  # trials started and not finished at this time
    budget_used: float  # Σ budget of finished trials (budget units)
    train_hours: float  # Σ info.train_seconds of finished trials / 3600
    gpu_hours: float  # Σ GPU-seconds of finished trials / 3600 (from state.json; 0 without it)


def sweep_start(trials: list[TrialRow]) -> datetime | None:
    stamps = [t.started_at or t.finished_at for t in trials]
    present = [s for s in stamps if s is not None]
    return min(present) if present else None


def finished_ok(trials: list[TrialRow]) -> list[TrialRow]:
    """Trials with a finite loss and a finish time, in order of finishing."""
    done = [t for t in trials if t.loss is not None and t.finished_at is not None]
    return sorted(done, key=lambda t: (t.finished_at, t.trial_id))


def elapsed(t: datetime, start: datetime) -> float:
    return (t - start).total_seconds()


def incumbent_trajectory(trials: list[TrialRow]) -> list[IncumbentPoint]:
    start = sweep_start(trials)
    if start is None:
        return []
    out: list[IncumbentPoint] = []
    for t in finished_ok(trials):
        assert t.loss is not None and t.finished_at is not None
        if out:
            cur = out[-1]
            better = t.budget > cur.budget or (t.loss < cur.loss and t.budget >= cur.budget)
            if not better:
                continue
        out.append(
            IncumbentPoint(
                time_s=elapsed(t.finished_at, start),
                loss=t.loss,
                budget=t.budget,
                trial_id=t.trial_id,
                config_id=t.config_id,
            )
        )
    return out


def rank_configs(
    trials: list[TrialRow], meta: dict[str, TrialMeta] | None = None
) -> list[RankedConfig]:
    """Every config with a finite loss: largest budget first, then lowest loss on it; ``meta``
    (the state's per-trial records) marks how each was proposed, its queued time and
    preemptions."""
    meta = meta or {}
    every: dict[str, list[TrialMeta]] = {}
    for t in trials:
        if t.trial_id in meta:
            every.setdefault(t.config_id, []).append(meta[t.trial_id])
    by_config: dict[str, list[TrialRow]] = {}
    for t in trials:
        if t.loss is not None:
            by_config.setdefault(t.config_id, []).append(t)
    ranked = []
    for config_id, rows in by_config.items():
        best = min(rows, key=lambda r: (-r.budget, r.loss, r.trial_id))
        assert best.loss is not None
        per_budget: dict[float, float] = {}
        for r in sorted(rows, key=lambda r: r.budget):
            assert r.loss is not None
            per_budget[r.budget] = min(r.loss, per_budget.get(r.budget, r.loss))
        ranked.append(
            RankedConfig(
                rank=0,
                config_id=config_id,
                trial_id=best.trial_id,
                budget=best.budget,
                loss=best.loss,
                loss_per_budget=per_budget,
                params=next((r.params for r in rows if r.params is not None), None),
                config=best.config,
                **_totals(every.get(config_id, [])),
            )
        )
    ranked.sort(key=lambda c: (-c.budget, c.loss, c.config_id))
    return [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(ranked)]


def proposed(model_based: bool | None) -> str:
    """How BOHB proposed a config: "model", "random", or "–" without the controller's state."""
    return "–" if model_based is None else ("model" if model_based else "random")


def _totals(metas: list[TrialMeta]) -> dict[str, Any]:
    if not metas:
        return {}
    queued = [m.queued_s for m in metas if m.queued_s is not None]
    preempted = [m.preemptions for m in metas if m.preemptions is not None]
    model = [m.model_based for m in metas if m.model_based is not None]
    return {
        "model_based": model[0] if model else None,  # a config's trials share its proposal
        "queued_s": sum(queued) if queued else None,
        "preemptions": sum(preempted) if preempted else None,
    }


def usage_over_time(
    trials: list[TrialRow], gpu_seconds: dict[str, float] | None = None
) -> list[UsagePoint]:
    """A step series with one point per start or finish event; ``gpu_seconds`` by trial id."""
    gpu_seconds = gpu_seconds or {}
    start = sweep_start(trials)
    if start is None:
        return []
    events: list[tuple[float, int, TrialRow]] = []
    for t in trials:
        if t.started_at is not None:
            events.append((elapsed(t.started_at, start), +1, t))
        if t.finished_at is not None:
            events.append((elapsed(t.finished_at, start), -1 if t.started_at else 0, t))
    events.sort(key=lambda e: (e[0], e[1]))  # finishes before starts at one instant
    running, budget_used, train_s, gpu_s = 0, 0.0, 0.0, 0.0
    out: list[UsagePoint] = []
    for time_s, delta, t in events:
        running += delta
        if delta <= 0:  # a finish
            budget_used += t.budget
            train_s += t.train_seconds or 0.0
            gpu_s += gpu_seconds.get(t.trial_id, 0.0)
        out.append(
            UsagePoint(
                time_s=time_s,
                running=running,
                budget_used=budget_used,
                train_hours=train_s / 3600,
                gpu_hours=gpu_s / 3600,
            )
        )
    return out
