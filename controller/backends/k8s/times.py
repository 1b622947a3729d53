"""When a trial's pod ran, from the API objects (pure: no I/O).

A Job's own clock (``status.startTime``) starts before scheduling and the image pull, and Kueue
resets it on every admission, so the running time comes from the trainer container instead:
``state.running.startedAt`` while it runs, ``state.terminated.startedAt`` / ``finishedAt`` after.
``pod.status.startTime`` is not used: the kubelet sets it before pulling the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.backends.k8s.names import CONTAINER


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as the API server writes it ("2026-01-01T00:00:00Z"), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def container_times(pod: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(started, finished) of the pod's trainer container; (None, None) before it started."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") != CONTAINER:
            continue
        state = cs.get("state") or {}
        if "running" in state:
            return parse_time((state["running"] or {}).get("startedAt")), None
        if "terminated" in state:
            ended = state["terminated"] or {}
            return parse_time(ended.get("startedAt")), parse_time(ended.get("finishedAt"))
    return None, None


def latest_container_times(
    pods: list[dict[str, Any]],
) -> tuple[datetime | None, datetime | None]:
    """The times of the pod whose container started last (a Job's current or final pod)."""
    best: tuple[datetime | None, datetime | None] = (None, None)
    for pod in pods:
        started, finished = container_times(pod)
        if started is not None and (best[0] is None or started >= best[0]):
            best = (started, finished)
    return best


def job_end_time(job: dict[str, Any]) -> datetime | None:
    """When a finished Job ended: its completionTime, else its terminal condition's transition."""
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_time(status["completionTime"])
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


@dataclass
class RunPeriods:
    """One attempt's running periods: a pod preempted and replaced by the Job ran in several."""

    started: datetime | None = None  # start of the current period (None: not running)
    done_s: float = 0.0  # seconds of the periods that ended
    last_started: datetime | None = None  # start of the latest period, ended or not

    def start(self, at: datetime) -> None:
        self.started = self.last_started = at

    def stop(self, at: datetime) -> None:
        if self.started is not None:
            self.done_s += max(0.0, (at - self.started).total_seconds())
            self.started = None

    def total(self, now: datetime) -> float:
        current = max(0.0, (now - self.started).total_seconds()) if self.started else 0.0
        return self.done_s + current
