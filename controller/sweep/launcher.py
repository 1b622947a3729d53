"""Handing trials to the backend: each trial's trial.json first, then ``backend.launch``.

A tick that launches a thousand trials one request after another blocks polling for minutes
(405 s at 1,000 Jobs, measured), so launches go out from a bounded thread pool when the backend
serves concurrent calls (``Backend.launch_concurrency``), and the scheduler starts at most
``per_tick`` of them per tick (the backend's ``launch_rate`` x the poll interval), so polling
goes on between batches. Each launch takes its own timestamp (``launched_at``) just before its
``backend.launch`` call: the wait for a rate token counts as queued time, never as running.

Every attempt's clock starts at its own launch, relaunches included (a retry, a resumed LAUNCHED
or CANCELLED trial): ``this_attempt`` moves a running period the backend dates before the launch
(an earlier attempt's process that an idempotent launch found still running, a stale record) to
the launch, so an old start never cancels a fresh attempt as past its deadline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from controller.backends.base import Backend, Clock, Launch, TrialState
from controller.sweep.spec import SweepSpec
from controller.sweep.state import TrialRecord
from controller.sweep.trials import trial_spec
from trainer.contract import FILE_TRIAL, trial_prefix
from trainer.store import Store


class Launcher:
    def __init__(
        self, spec: SweepSpec, sweep: str, store: Store, backend: Backend, clock: Clock
    ) -> None:
        self.spec, self.sweep = spec, sweep
        self.store, self.backend, self.clock = store, backend, clock
        rate = backend.launch_rate()
        # a tick launches about one poll interval's worth at the backend's rate (at least one)
        self.per_tick = None if rate is None else max(1, math.ceil(rate * spec.poll_interval_s))
        self.workers = backend.launch_concurrency() or 1

    def launch(
        self, trials: Sequence[TrialRecord], *, resumed: bool = False
    ) -> list[Exception | None]:
        """Launch every trial; for each, None or the exception its launch raised (the caller
        decides: a failed launch is retried like a lost trial)."""
        if self.workers <= 1 or len(trials) <= 1:
            return [self._try(t, resumed) for t in trials]
        with ThreadPoolExecutor(min(self.workers, len(trials)), "kubohb-launch") as pool:
            return list(pool.map(lambda t: self._try(t, resumed), trials))

    def _try(self, t: TrialRecord, resumed: bool) -> Exception | None:
        try:
            self._send(t, resumed)
        except Exception as exc:  # an API or store hiccup: the caller records it
            return exc
        return None

    def _send(self, t: TrialRecord, resumed: bool) -> None:
        trial = trial_spec(self.spec, self.sweep, t)
        key = f"{trial_prefix(self.sweep, t.trial_id)}/{FILE_TRIAL}"
        if not (resumed and self.store.exists(key)):  # same content: BOHB is deterministic
            self.store.put(key, trial.model_dump_json(indent=1).encode())
        # Each launch's own moment (a tick of many launches takes a while), also for relaunches.
        t.launched_at, t.started_at, t.run_s = self.clock.now(), None, 0.0
        self.backend.launch(
            Launch(
                sweep=self.sweep,
                trial_id=t.trial_id,
                trial_url=self.store.url(key),
                rung=t.rung,
                resources=self.spec.trainer.resources,
                deadline_s=t.deadline_s,
                queue_timeout_s=self.spec.trials.queue_timeout_s,
            )
        )


def this_attempt(t: TrialRecord, ts: TrialState | None, now: datetime) -> TrialState | None:
    """The backend's view of ``t``'s current attempt: never running since before its launch."""
    launched = t.launched_at
    if ts is None or ts.started_at is None or launched is None or ts.started_at >= launched:
        return ts
    end = ts.ended_at or now
    since = max(0.0, (end - launched).total_seconds())
    run_s = None if ts.run_s is None else min(ts.run_s, since)
    return ts.model_copy(update={"started_at": launched, "run_s": run_s})
