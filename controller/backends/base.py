"""The backend seam: where trials run. The scheduler knows this module only, never which backend.

A backend launches a trial, says what the store cannot (that a trial is pending or running, or
how it ended without writing a result), cancels it, and lists the trials it still runs so that a
restarted controller adopts them. Exit codes (``ExitCode``, the trial contract's) and the reasons
a trial ends (``Ending``) are typed values here, used by both backends and by the scheduler: no
decision is ever taken by matching words in a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from trainer.contract import ExitCode

__all__ = ["Backend", "Ending", "ExitCode", "Launch", "Resources", "TrialState"]


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
    deadline_s: float | None = Field(None, gt=0)  # kill the trial after this many seconds
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
    phase: Literal["pending", "running", "exited", "lost"]
    exit_code: int | None = None  # for "exited"
    ending: Ending | None = None  # for "exited": who ended it (None = EXITED)
    reason: str | None = None  # human-readable detail: "OOMKilled", "evicted"... never parsed


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

    def close(self) -> None:
        """Release resources (watches, threads)."""
        return None
