"""The backend seam: where trials run. The scheduler loop never knows which backend it drives.

Two implementations: ``local`` (a subprocess per trial) and ``kubernetes`` (a batch/v1 Job per
trial). The store tells the controller about results; a backend only says what the store cannot:
that a trial is still running, or ended without writing a result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


class TrialState(BaseModel):
    """The backend's view of one trial."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str
    phase: Literal["pending", "running", "exited", "lost"]
    exit_code: int | None = None  # for "exited"
    reason: str | None = None  # human-readable: "OOMKilled", "deadline exceeded", "evicted"...


class Backend(ABC):
    name: str

    @abstractmethod
    def launch(self, launch: Launch) -> None:
        """Start the trial. Idempotent: launching a trial that already runs is a no-op."""

    @abstractmethod
    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        """The state of the given trials. A trial the backend does not know is "lost"."""

    @abstractmethod
    def cancel(self, trial_id: str) -> None:
        """Stop the trial; no error if it already ended."""

    @abstractmethod
    def adopt(self) -> set[str]:
        """Trial ids this backend still runs for the sweep (a restarted controller adopts them)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (watches, threads)."""
