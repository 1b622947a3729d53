"""Every number of the report, computed once (``analyse``), and its --json form (``summarise``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SerializerFunctionWrapHandler, field_serializer

from controller.report.budgets import BudgetStats, budget_stats, unit_of
from controller.report.correlation import BudgetPair, correlation_across_budgets, losses_by_budget
from controller.report.fanova import (
    MIN_POINTS,
    BudgetImportance,
    Importance,
    PairImportance,
    ParamHint,
    importance_by_budget,
    space_hints,
)
from controller.report.gates import GateResult
from controller.report.incumbent import (
    IncumbentPoint,
    RankedConfig,
    UsagePoint,
    incumbent_trajectory,
    rank_configs,
    usage_over_time,
)
from controller.report.load import SweepData


class Analysis(BaseModel):
    data: SweepData
    budgets: list[float]
    budget_unit: str
    correlations: list[BudgetPair]
    importance: list[BudgetImportance]
    trajectory: list[IncumbentPoint]
    ranked: list[RankedConfig]
    usage: list[UsagePoint]


def analyse(data: SweepData, seed: int = 0) -> Analysis:
    trials = data.trials
    table = losses_by_budget((t.config_id, t.budget, t.loss) for t in trials)
    # fANOVA points: one (config, loss) per config and budget, the same rows the correlation uses
    configs = {t.config_id: t.config for t in trials}
    points: dict[float, list[tuple[dict[str, Any], float]]] = {
        b: [(configs[c], loss) for c, loss in sorted(rows.items())] for b, rows in table.items()
    }
    return Analysis(
        data=data,
        budgets=sorted({t.budget for t in trials}),
        budget_unit=unit_of(trials),
        correlations=correlation_across_budgets(table),
        importance=importance_by_budget(points, seed=seed, hints=_hints(data.spec_yaml)),
        trajectory=incumbent_trajectory(trials),
        ranked=rank_configs(trials, data.state.trials if data.state else None),
        usage=usage_over_time(trials, data.state.gpu_seconds_by_trial if data.state else None),
    )


def _hints(spec_yaml: str | None) -> dict[str, ParamHint]:
    """The space's parameters from spec.yaml (the controller's file: any problem → no hints)."""
    if not spec_yaml:
        return {}
    try:
        return space_hints(yaml.safe_load(spec_yaml))
    except yaml.YAMLError:
        return {}


class TrialCounts(BaseModel):
    total: int
    ok: int
    failed: int
    running: int  # no result yet
    skipped: int  # trial folders the report could not read (see notes)


class ImportanceSummary(BaseModel):
    budget: float
    n: int
    note: str | None
    method: Literal["exact", "sampled"]  # of the pairwise importances (each pair has its se)
    sampled_rows: int | None  # cells drawn per tree and pair when sampled
    individual: list[Importance]
    pairwise: list[PairImportance]


class BracketProposals(BaseModel):
    """How the configurations of one bracket (Hyperband iteration) were proposed."""

    iteration: int
    configs: int  # new configurations the bracket started
    model_based: int  # proposed by BOHB's model
    random: int  # sampled from the prior
    unknown: int = 0  # no controller record of how (a sweep from another tool)


def proposals_by_bracket(data: SweepData) -> list[BracketProposals]:
    """Per bracket: its configurations and how many the model proposed (from state.json's
    records; a config's trials share its proposal)."""
    records = data.state.trials if data.state else {}
    seen: dict[int, dict[str, bool | None]] = {}
    for t in data.trials:
        if t.iteration is None:
            continue
        meta = records.get(t.trial_id)
        how = meta.model_based if meta is not None else None
        configs = seen.setdefault(t.iteration, {})
        if configs.get(t.config_id) is None:
            configs[t.config_id] = how
    return [
        BracketProposals(
            iteration=it,
            configs=len(c),
            model_based=sum(v is True for v in c.values()),
            random=sum(v is False for v in c.values()),
            unknown=sum(v is None for v in c.values()),
        )
        for it, c in sorted(seen.items())
    ]


def proposals_line(s: ReportSummary) -> str:
    """``bracket 0: 0 of 9, bracket 1: 2 of 3``: the model's share of each bracket's configs."""
    return ", ".join(f"bracket {b.iteration}: {b.model_based} of {b.configs}" for b in s.proposals)


class ReportSummary(BaseModel):
    """What ``kubohb report --json`` prints; budgets as JSON object keys are strings."""

    sweep: str
    url: str
    generated_at: datetime
    budget_unit: str
    budgets: list[float]
    trials: TrialCounts
    incumbent: RankedConfig | None  # the top config; printed without its rank (always 1)
    per_budget: list[BudgetStats]  # trial counts and best loss of each budget (rung)
    correlations: list[BudgetPair]
    importance: list[ImportanceSummary]
    top: list[RankedConfig]
    train_hours: float  # Σ info.train_seconds over finished trials
    gpu_hours: float | None  # from state.json, when the controller records it
    cost: float | None
    stop_reason: str | None
    notes: list[str]
    # per analysis that has nothing to show yet: the data it is waiting for
    waiting: dict[str, str] = {}
    gates: list[GateResult] = []  # --fail-if-*, in the order given; filled in by build
    proposals: list[BracketProposals] = []  # per bracket: model-based and random configs

    @field_serializer("incumbent", mode="wrap")
    def _incumbent_without_rank(
        self, value: RankedConfig | None, handler: SerializerFunctionWrapHandler
    ) -> dict[str, Any] | None:
        out: dict[str, Any] | None = handler(value)
        if out is not None:
            del out["rank"]
        return out


def summarise(a: Analysis, top_k: int = 10) -> ReportSummary:
    trials = a.data.trials
    state = a.data.state
    return ReportSummary(
        sweep=a.data.sweep,
        url=a.data.url,
        generated_at=datetime.now(UTC),
        budget_unit=a.budget_unit,
        budgets=a.budgets,
        trials=TrialCounts(
            total=len(trials),
            ok=sum(t.status == "ok" for t in trials),
            failed=sum(t.status == "failed" for t in trials),
            running=sum(t.status == "running" for t in trials),
            skipped=a.data.skipped,
        ),
        incumbent=a.ranked[0] if a.ranked else None,
        per_budget=budget_stats(trials),
        correlations=a.correlations,
        importance=[
            ImportanceSummary(
                budget=b.budget,
                n=b.n,
                note=b.note,
                method=b.method,
                sampled_rows=b.sampled_rows,
                individual=b.individual,
                pairwise=b.pairwise,
            )
            for b in a.importance
        ],
        top=a.ranked[:top_k],
        train_hours=sum(t.train_seconds or 0.0 for t in trials) / 3600.0,
        gpu_hours=state.gpu_hours if state else None,
        cost=state.cost if state else None,
        stop_reason=state.stop_reason if state else None,
        notes=a.data.notes,
        waiting=waiting_for(a),
        proposals=proposals_by_bracket(a.data),
    )


def waiting_for(a: Analysis) -> dict[str, str]:
    """For each analysis with nothing to show (its section, its key): what data would fill it.
    A sweep that just started is a page of empty axes otherwise."""
    out: dict[str, str] = {}
    trials = a.data.trials
    if not any(t.status == "ok" and t.finished_at is not None for t in trials):
        out["figure1"] = "a trial that finished with a loss"
    if len({t.budget for t in trials if t.loss is not None}) < 2:
        out["correlation"] = "finished trials on two budgets (promotions bring them)"
    elif all(p.rho is None for p in a.correlations):
        out["correlation"] = "3 configurations with a loss on both of two budgets"
    if not any(b.note is None for b in a.importance):
        out["importance"] = f"{MIN_POINTS} configurations with a loss on one budget"
    if not any(sum(p.val_error is not None for p in t.curve) >= 2 for t in trials):
        out["curves"] = "a trial with two validation errors in its metrics.jsonl"
    if not a.usage:
        out["usage"] = "a trial with a start time"
    if not a.ranked:
        out["top"] = "a configuration with a finite loss"
    return out
