"""A trial attempt's clock, from the backend's view: pure functions, no I/O.

An attempt is *launched* (handed to the backend), may wait queued, suspended or pending, then
*runs* (its container or process started), possibly in several periods (a preempted pod is
re-queued and starts again). Its deadline and its cost count running time only; the wait is
recorded apart (``queued_s``) and bounded by ``trials.queue_timeout_s``.

``TrialRecord`` keeps the current attempt's ``started_at`` (the current running period, None
while not running) and ``run_s`` (seconds of its earlier running periods), updated from each
poll by ``observe``, which also counts the trial's ``preemptions`` (running, then pending again).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from controller.backends.base import TrialState
from controller.sweep.state import TrialRecord
from trainer.contract import TrialResult

Change = Literal["started", "requeued"]


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def observe(t: TrialRecord, ts: TrialState | None, now: datetime) -> Change | None:
    """Take the backend's running time into the record; returns what changed, for the log."""
    if ts is None or ts.phase in ("lost", "exited"):
        return None
    if ts.phase == "running":
        started = ts.started_at or t.started_at or now  # a backend that cannot tell: first seen
        change: Change | None = "started" if t.started_at is None else None
        t.started_at = started
        if ts.run_s is not None:  # the backend's total includes the current period
            t.run_s = max(0.0, ts.run_s - max(0.0, _seconds(started, now)))
        return change
    # pending: not started yet, or back in the queue after a running period
    if t.started_at is not None:
        t.run_s = ts.run_s if ts.run_s is not None else t.run_s + _seconds(t.started_at, now)
        t.started_at = None
        t.preemptions += 1
        return "requeued"
    if ts.run_s is not None:
        t.run_s = ts.run_s
    return None


def running_s(t: TrialRecord, now: datetime) -> float:
    """Seconds the current attempt has run so far (all its running periods)."""
    current = max(0.0, _seconds(t.started_at, now)) if t.started_at is not None else 0.0
    return t.run_s + current


def has_run(t: TrialRecord) -> bool:
    return t.started_at is not None or t.run_s > 0


def waited_s(t: TrialRecord, now: datetime) -> float:
    """Seconds the current attempt has spent launched but not running."""
    if t.launched_at is None:
        return 0.0
    return max(0.0, _seconds(t.launched_at, now) - running_s(t, now))


def final_running_s(
    t: TrialRecord, ts: TrialState | None, end: datetime, result: TrialResult | None = None
) -> float:
    """Running seconds of an attempt that ended at ``end``: the backend's count when it has one,
    else from the start the loop saw, else from the trainer's own clock, else none."""
    if ts is not None and ts.phase == "exited" and ts.run_s is not None:
        return ts.run_s
    if has_run(t):
        return running_s(t, end)
    if result is not None and result.started_at is not None and result.finished_at is not None:
        return max(0.0, _seconds(result.started_at, result.finished_at))
    return 0.0


def overdue_s(t: TrialRecord, now: datetime, slack_s: float) -> float:
    """How far the current running period is past the deadline (> 0: cancel it)."""
    if t.started_at is None:
        return 0.0
    return _seconds(t.started_at, now) - t.deadline_s - slack_s


def queued_too_long_s(t: TrialRecord, now: datetime, limit_s: float | None) -> float:
    """How far an attempt that never ran is past the queue limit (> 0: give up on it)."""
    if limit_s is None or has_run(t) or t.launched_at is None:
        return 0.0
    return _seconds(t.launched_at, now) - limit_s


def next_check(t: TrialRecord, slack_s: float, limit_s: float | None) -> datetime | None:
    """The earliest moment one of the two rules above could fire for this attempt."""
    if t.started_at is not None:
        return t.started_at + timedelta(seconds=t.deadline_s + slack_s)
    if limit_s is not None and t.launched_at is not None and not has_run(t):
        return t.launched_at + timedelta(seconds=limit_s)
    return None
