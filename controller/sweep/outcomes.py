"""How an attempt ends, recorded on its trial and on the sweep.

An ended attempt is charged for its running time only (never its wait); a result or a failure is
told to BOHB; a LOST attempt (it never produced a result: preempted, queued too long, a launch
error) is retried up to ``trials.max_attempts`` and never told; a CANCELLED one (a sweep cap, or
Ctrl-C with ``--cancel-running``) is not told either, so a resumed sweep relaunches it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from controller import log
from controller.backends.base import TrialState
from controller.bohb import Optimizer
from controller.sweep import cost, timing
from controller.sweep.spec import SweepSpec
from controller.sweep.state import StopReason, SweepState, TrialRecord
from controller.sweep.trials import better
from trainer.contract import TrialResult

# A trainer's own error message is kept to this length in the state (the journal, status, every
# snapshot); the whole of it is in result.json.
MAX_ERROR_CHARS = 2000


def clip(error: str | None) -> str | None:
    if error is None or len(error) <= MAX_ERROR_CHARS:
        return error
    return f"{error[:MAX_ERROR_CHARS]}... ({len(error):,} characters; all of it in result.json)"


class Outcomes:
    """Writes the ends of attempts into ``state`` and tells ``bohb``; ``changed`` says that the
    state changed since the caller last saved it."""

    def __init__(self, spec: SweepSpec, state: SweepState, bohb: Optimizer) -> None:
        self.spec, self.state, self.bohb = spec, state, bohb
        self.prices = spec.rung_prices()
        self.changed = False

    def end_attempt(
        self,
        t: TrialRecord,
        now: datetime,
        ts: TrialState | None = None,
        result: TrialResult | None = None,
    ) -> None:
        """Charge the attempt's running time (never its wait) and record how long it waited."""
        assert t.launched_at is not None
        end = now
        finished = result.finished_at if result is not None else None
        if finished is not None and t.launched_at <= finished <= now:
            end = finished  # the trainer's own clock: no charge for the controller's downtime
        ran = timing.final_running_s(t, ts, end, result)
        charged = cost.charge(ran, t.deadline_s, t.gpus)
        t.gpu_seconds += charged
        t.queued_s += max(0.0, (end - t.launched_at).total_seconds() - ran)
        t.run_s, t.started_at, t.ended_at = ran, None, now
        self.state.gpu_seconds += charged
        self.state.cost += cost.money(charged, self.prices[t.rung])  # at its rung's class price
        self.changed = True

    def finish(
        self, t: TrialRecord, result: TrialResult | str, now: datetime, ts: TrialState | None
    ) -> None:
        """The trial's result.json was read: a result, a reported failure, or (a string) why the
        file is invalid."""
        if isinstance(result, str):
            self.fail(t, result, now, ts=ts)
            return
        self.end_attempt(t, now, ts, result)
        if result.status == "ok":
            t.state, t.loss = "SUCCEEDED", result.loss
            self.state.incumbent = better(self.state.incumbent, t)
            self._tell(t.trial_id, result.loss)
            log.event("trial.succeeded", trial=t.trial_id, budget=t.budget, loss=t.loss)
        else:
            t.state, t.error = "FAILED", clip(result.error)
            self._tell(t.trial_id, None)
            log.event("trial.failed", trial=t.trial_id, budget=t.budget, error=t.error)

    def fail(
        self,
        t: TrialRecord,
        error: str,
        now: datetime,
        *,
        ended: bool = False,
        ts: TrialState | None = None,
    ) -> None:
        if t.state in ("LAUNCHED", "RUNNING") and not ended:
            self.end_attempt(t, now, ts)
        t.state, t.error, t.ended_at = "FAILED", error, now
        self._tell(t.trial_id, None)
        log.event("trial.failed", logging.WARNING, trial=t.trial_id, budget=t.budget, error=error)

    def lost(self, t: TrialRecord, why: str, now: datetime, ts: TrialState | None = None) -> None:
        self.end_attempt(t, now, ts)
        if self.fail_if_out_of_attempts(t, why, now):
            return
        t.state, t.error = "LOST", why
        log.event("trial.lost", logging.WARNING, trial=t.trial_id, attempts=t.attempts, reason=why)

    def fail_if_out_of_attempts(self, t: TrialRecord, why: str | None, now: datetime) -> bool:
        lost = t.attempts - t.cancels  # attempts a sweep stop cancelled were not lost
        if lost < self.spec.trials.max_attempts:
            return False
        self.fail(t, f"lost {lost} time(s), last: {why}", now, ended=True)
        return True

    def cancelled(self, t: TrialRecord, reason: StopReason, now: datetime) -> None:
        """The sweep stopped while the attempt ran (the caller cancelled it on the backend)."""
        self.end_attempt(t, now)
        t.state, t.cancels = "CANCELLED", t.cancels + 1
        t.error = f"cancelled: the sweep stopped ({reason}); relaunched when it is resumed"
        log.event("trial.cancelled", trial=t.trial_id, reason=reason)

    def _tell(self, trial_id: str, loss: float | None) -> None:
        self.bohb.tell(trial_id, loss)
        self.changed = True
