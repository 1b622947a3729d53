"""The backend seam: where trials run. The scheduler knows this module only, never which backend.

A backend launches a trial, says what the store cannot (that a trial is pending or running, since
when it runs, or how it ended without writing a result), cancels it, and lists the trials it still
runs so that a restarted controller adopts them. Exit codes (``ExitCode``, the trial contract's)
and the reasons a trial ends (``Ending``) are typed values here, used by the backends and by the
scheduler: no decision is ever taken by matching words in a message.

Time: a trial's deadline and its cost count from when it *runs* (``TrialState.started_at``,
``run_s``), never from when it was launched; queued, pending and suspended time is reported apart.
The loop reads the time from a ``Clock``: the wall clock, or a backend's own virtual one (the
simulator's), which ``Backend.clock()`` hands out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from trainer.contract import ExitCode

__all__ = [
    "LOG_TAIL_BYTES",
    "Backend",
    "Clock",
    "Ending",
    "ExitCode",
    "Launch",
    "Resources",
    "TrialState",
    "WallClock",
]


# The most of a failed attempt's output the loop keeps (``Backend.log_tail``): a traceback and
# the events before it, not a flood of output.
LOG_TAIL_BYTES = 256 * 1024


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int = Field(0, ge=0)
    cpu: str | None = None  # Kubernetes quantity, e.g. "4"
    memory: str | None = None  # e.g. "16Gi"


class Launch(BaseModel):
    """Everything a backend needs to start one trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep: str
    trial_id: str
    trial_url: str  # store URL of trial.json, handed to the trainer as KUBOHB_TRIAL
    rung: int = Field(0, ge=0)  # index of the budget in the schedule (per-rung overrides)
    resources: Resources = Resources()
    # Stop the trial after it has *run* this many seconds (queued or pending time not counted).
    deadline_s: float | None = Field(None, gt=0)
    # The most an attempt may wait before it runs; the scheduler enforces it (the trial is then
    # LOST). Backends use it only for a backstop of their own (a Job's activeDeadlineSeconds).
    queue_timeout_s: float | None = Field(None, gt=0)
    env: dict[str, str] = {}  # extra environment (store endpoint, region...), never secrets


class Ending(StrEnum):
    """How an attempt ended, as the backend knows it (``TrialState.ending`` of an exited trial)."""

    EXITED = "exited"  # the trainer exited by itself; its code is in exit_code
    DEADLINE = "deadline"  # the backend stopped it at its deadline
    CANCELLED = "cancelled"  # cancel() stopped it
    CANNOT_START = "cannot_start"  # the trainer command could not be started at all


class TrialState(BaseModel):
    """The backend's view of one trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str
    # pending: launched, not running yet (queued for quota, suspended by Kueue, scheduling, pulling
    # its image, or back in the queue after a preemption); running; exited; lost (unknown to it).
    phase: Literal["pending", "running", "exited", "lost"]
    exit_code: int | None = None  # for "exited"
    ending: Ending | None = None  # for "exited": who ended it (None = EXITED)
    reason: str | None = None  # human-readable detail: "OOMKilled", "evicted"... never parsed
    # When the attempt's current (or last) running period began: the container's or process's
    # start, after queueing, scheduling and image pull. None while it has not run.
    started_at: datetime | None = None
    # Seconds the attempt has run so far, over all its running periods (a preempted pod's too);
    # None when the backend cannot tell (the scheduler then counts from started_at).
    run_s: float | None = Field(None, ge=0)
    ended_at: datetime | None = None  # for "exited": when the attempt stopped running


class Clock(Protocol):
    """The loop's time: ``now`` (timezone-aware) and ``sleep`` between ticks. ``wake_at`` is the
    earliest moment a time rule of the loop could fire (a deadline): a virtual clock may jump to
    it, or to its next event, instead of ticking through time in which nothing can happen."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float, wake_at: datetime | None = None) -> None: ...


@dataclass
class WallClock:
    """Real time: ``datetime.now(UTC)`` and ``time.sleep`` (``sleep_fn`` for tests)."""

    sleep_fn: Callable[[float], None] = field(default=time.sleep)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, wake_at: datetime | None = None) -> None:
        self.sleep_fn(seconds)


class Backend(Protocol):
    """What the scheduler calls. ``launch`` and ``cancel`` are idempotent."""

    name: str

    def launch(self, launch: Launch) -> None:
        """Start the trial. Launching a trial that already runs is a no-op."""
        ...

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        """The state of the given trials. A trial the backend does not know is "lost"."""
        ...

    def cancel(self, trial_id: str) -> None:
        """Stop the trial; no error if it already ended."""
        ...

    def adopt(self) -> set[str]:
        """Trial ids this backend still runs for the sweep (a restarted controller adopts them)."""
        ...

    def capacity(self) -> int | None:
        """How many trials fit at once (e.g. GPU slots); None = no limit of the backend's own."""
        return None

    def launch_rate(self) -> float | None:
        """Launches per second the backend allows on average (an API server's budget); None =
        no limit of its own. The scheduler starts about one poll interval's worth per tick."""
        return None

    def launch_concurrency(self) -> int | None:
        """How many ``launch`` calls the backend serves at once from several threads; None =
        call it from one thread only."""
        return None

    def clock(self) -> Clock | None:
        """The backend's own clock, for a backend that simulates time; None = the wall clock."""
        return None

    def log_tail(self, trial_id: str) -> bytes | None:
        """The end (at most ``LOG_TAIL_BYTES``) of the output of the trial's last attempt, where
        the backend holds it apart from the store and may lose it (Kubernetes: the pod's log,
        gone with the pod). The loop calls it when an attempt failed, before anything deletes
        the attempt, and keeps it in the trial's folder. None: nothing to read."""
        return None

    def milestone(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Tell the cluster about the sweep (started, a new incumbent, a cap, the end) or about a
        trial in trouble, where it has a place for that (Kubernetes: an Event on the controller
        Job). Best effort, rate-limited by the backend; the default does nothing."""
        return None

    def close(self) -> None:
        """Release resources (watches, threads)."""
        return None
