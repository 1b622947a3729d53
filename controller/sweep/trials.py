"""Pure helpers around single trials: the trial.json the controller writes, the result.json it
reads, and the incumbent of a trial table."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from controller.sweep import cost, timing
from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState, TrialRecord
from trainer.contract import FILE_RESULT, ContinueFrom, TrialResult, TrialSpec


def trial_spec(spec: SweepSpec, sweep: str, t: TrialRecord) -> TrialSpec:
    """The TrialSpec of one trial: the same for every attempt, so writing it is idempotent."""
    trainer = spec.trainer
    return TrialSpec(
        sweep=sweep,
        trial_id=t.trial_id,
        config={**spec.space.fixed, **t.config},  # fixed values: never searched, always passed
        budget=t.budget,
        budget_unit=spec.budget.unit,
        dataset=trainer.dataset,
        data=trainer.data,
        seed=trainer.seed,
        store_root=spec.store.root_url(),
        store_endpoint_url=spec.store.endpoint_url,
        store_region=spec.store.region,
        max_params=trainer.max_params,
        checkpoint_every_s=trainer.checkpoint_every_s,
        device=trainer.device,
        amp=trainer.amp,
        compile=trainer.compile,
        num_workers=trainer.num_workers,
        token=t.token,
        continue_from=None
        if t.continues is None
        else ContinueFrom(trial_id=t.continues, budget=continued_budget(spec, t)),
    )


def continued_budget(spec: SweepSpec, t: TrialRecord) -> float:
    """The budget ``t`` continues from (its rung below's, ``bohb.promotion_resume``), 0.0 when it
    trains from scratch: what its reservation and nominal cost leave out."""
    return spec.budgets()[t.rung - 1] if t.continues is not None and t.rung > 0 else 0.0


def parse_result(raw: bytes, trial_id: str) -> TrialResult | str:
    """The trial's result, or why it is invalid (the trial then FAILs with that reason)."""
    try:
        result = TrialResult.model_validate_json(raw)
    except ValidationError as exc:
        return f"invalid {FILE_RESULT}: {_short(exc)}"
    if result.trial_id != trial_id:
        return f"invalid {FILE_RESULT}: trial_id {result.trial_id!r} != {trial_id!r}"
    return result


def incumbent(state: SweepState) -> dict[str, Any] | None:
    """The best trial on the largest budget that has a result (BOHB's definition; ties by id)."""
    best: dict[str, Any] | None = None
    for t in state.trials.values():
        best = better(best, t)
    return best


def better(current: dict[str, Any] | None, t: TrialRecord) -> dict[str, Any] | None:
    """The incumbent once ``t`` succeeded: ``incumbent``'s rule, kept up to date one result at a
    time instead of scanning the whole table on every save."""
    if t.state != "SUCCEEDED" or t.loss is None:
        return current
    if current is not None:
        key = (-current["budget"], current["loss"], current["trial_id"])
        if key <= (-t.budget, t.loss, t.trial_id):
            return current
    return {
        "trial_id": t.trial_id,
        "config_id": t.config_id,
        "config": t.config,
        "budget": t.budget,
        "loss": t.loss,
    }


def goal_met(spec: SweepSpec, state: SweepState) -> bool:
    """``stop.goal`` is met: the incumbent is on the largest budget with a loss below it."""
    goal, best = spec.stop.goal, state.incumbent
    if goal is None or best is None or best["budget"] < spec.budget.max:
        return False
    return bool(best["loss"] < goal.loss_below)


def running_cost(t: TrialRecord, now: datetime, price: float | None = None) -> cost.Running:
    """An open attempt as the cost logic sees it (the scheduler's caps and `kubohb status`): its
    running time so far, never the time it waited queued or pending, and its device-hour
    ``price`` (None: the sweep's one price)."""
    return cost.Running(timing.running_s(t, now), t.deadline_s, t.gpus, t.reserve_s, price)


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
