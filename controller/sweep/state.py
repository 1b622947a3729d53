"""The sweep's state: the trial table, BOHB's state and the sweep's scalars (pydantic models).

How it is kept in the store — a snapshot, ``state.json``, and a journal of small entries after it
— is ``journal.py``'s business; ``journal.load_state`` reads it.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

STATE_VERSION = 1
FILE_STATE = "state.json"
FILE_SPEC = "spec.yaml"

# RUNNING: handed to the backend, which may still hold it queued or pending (see started_at).
# CANCELLED: stopped by a sweep cap or an interrupt; never told to BOHB, relaunched on resume.
TrialPhase = Literal["PENDING", "LAUNCHED", "RUNNING", "SUCCEEDED", "FAILED", "LOST", "CANCELLED"]
DONE: frozenset[str] = frozenset({"SUCCEEDED", "FAILED"})
SweepStatus = Literal["running", "finished", "stopped"]
StopReason = Literal[
    "finished",
    "max_iterations",
    "max_trials",
    "max_gpu_hours",
    "max_cost",
    "deadline",
    "goal",
    "interrupted",
]
# Exit code of `kubohb run` per stop reason: 0 = the search ran out of work, 3 = a cap stopped it,
# 130 = interrupted (Ctrl-C) with --cancel-running.
EXIT_BY_REASON: dict[str, int] = {
    "finished": 0,
    "max_iterations": 0,
    "max_trials": 3,
    "max_gpu_hours": 3,
    "max_cost": 3,
    "deadline": 3,
    "goal": 0,
    "interrupted": 130,
}
# A sweep with `stop.goal` that ended without meeting it (any other stop reason but interrupted).
EXIT_GOAL_NOT_MET = 4


def exit_code(reason: str, has_goal: bool) -> int:
    """`kubohb run`'s exit code for a sweep that stopped for ``reason``."""
    if has_goal and reason not in ("goal", "interrupted"):
        return EXIT_GOAL_NOT_MET  # ended, by whatever stop, without the objective it gates on
    return EXIT_BY_REASON[reason]


def utcnow() -> datetime:
    return datetime.now(UTC)


# A slotted pydantic dataclass, not a BaseModel: the same validation and JSON, at a third of the
# memory (0.75 KB a finished record instead of 2.2 KB: no per-instance __dict__ and no
# fields-set), which is most of the controller's memory at 50,000 trials.
@dataclass(slots=True, kw_only=True, config=ConfigDict(extra="forbid"))
class TrialRecord:
    trial_id: str
    config_id: Any = None
    config: dict[str, Any]
    budget: float
    rung: int = 0
    iteration: int = 0
    model_based: bool = False
    state: TrialPhase = "PENDING"
    attempts: int = 0  # launches so far
    cancels: int = 0  # attempts a sweep stop cancelled: relaunched, not counted as lost
    # Running periods a poll found back in the queue: a preempted, evicted or reclaimed pod (or
    # a Kueue eviction) the backend replaced, or a pod its Job retried after a failure (exit 75,
    # OOM). Each resumed from the trial's checkpoint; none is an attempt.
    preemptions: int = 0
    gpus: int = 0
    deadline_s: float  # worst-case running seconds of one attempt
    reserve_s: float | None = None  # expected running seconds, what a cap reserves (None: deadline)
    created_at: datetime
    launched_at: datetime | None = None  # when the current (or last) attempt was handed out
    # The backend's view of the current attempt: when its running period began (None while it
    # is queued or pending) and the seconds it ran in earlier periods (a preempted pod's).
    started_at: datetime | None = None
    run_s: float = 0.0
    queued_s: float = 0.0  # seconds ended attempts waited queued or pending (never charged)
    ended_at: datetime | None = None
    loss: float | None = None
    gpu_seconds: float = 0.0  # device-seconds of running time over all finished attempts
    error: str | None = None
    token: str | None = None  # its trial.json's, which its result must carry (None: before tokens)
    # bohb.promotion_resume: the trial at the rung below whose checkpoint this one continues
    continues: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        # Records written before 0.2 embedded the result's `info`; it lives in result.json only.
        if isinstance(data, dict) and "info" in data:
            data = {k: v for k, v in data.items() if k != "info"}
        return data

    @property
    def done(self) -> bool:
        return self.state in DONE


# A record's fields in order: the journal tells a changed record by their values.
TRIAL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrialRecord))


class SweepState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    sweep: str
    seq: int = 0  # the journal position this state includes (controller/sweep/journal.py)
    started_at: datetime
    updated_at: datetime
    status: SweepStatus = "running"
    stop_reason: StopReason | None = None
    bohb: dict[str, Any]  # BOHB.state_dict() in a snapshot; {} in a running controller's memory
    trials: dict[str, TrialRecord] = {}  # in the order BOHB handed them out
    gpu_seconds: float = 0.0  # device-seconds of finished attempts (running ones are added live)
    cost: float = 0.0  # money of gpu_seconds, each trial's at its rung's price (cost.classes)
    gpu_hour_price: float = 0.0
    rung_prices: list[float] = Field(default_factory=list)  # money per device-hour by rung
    budgets: list[float] = Field(default_factory=list)
    incumbent: dict[str, Any] | None = None

    def in_phase(self, *phases: str) -> list[TrialRecord]:
        return [t for t in self.trials.values() if t.state in phases]
