"""Job/Pod status -> TrialState (pure)."""

from __future__ import annotations

from typing import Any

from controller.backends.base import ExitCode
from controller.backends.k8s.status import is_finished, job_state, pod_problem


def job(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "spec": spec, "status": status}


def cond(kind: str, reason: str = "", message: str = "", status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_complete_is_exit_zero() -> None:
    state = job_state("t", job({"conditions": [cond("Complete")], "succeeded": 1}))
    assert (state.phase, state.exit_code) == ("exited", 0)


def test_pod_failure_policy_fail_job_reports_the_container_exit_code() -> None:
    msg = "Container trainer for pod ns/p failed with exit code 2 matching FailJob rule at index 0"
    state = job_state("t", job({"conditions": [cond("Failed", "PodFailurePolicy", msg)]}))
    assert (state.phase, state.exit_code) == ("exited", 2)
    assert state.reason is not None and "exit code 2" in state.reason


def test_deadline_and_backoff() -> None:
    deadline = job_state("t", job({"conditions": [cond("Failed", "DeadlineExceeded")]}))
    assert (deadline.phase, deadline.exit_code) == ("exited", ExitCode.DEADLINE)
    assert deadline.reason is not None and "deadline" in deadline.reason
    backoff = job_state("t", job({"conditions": [cond("Failed", "BackoffLimitExceeded")]}))
    assert backoff.phase == "exited" and backoff.exit_code != 0
    assert backoff.reason is not None and "backoff" in backoff.reason
    # FailureTarget (1.31+) is already terminal: the pods are only being cleaned up
    assert (
        job_state("t", job({"conditions": [cond("FailureTarget", "BackoffLimitExceeded")]})).phase
        == "exited"
    )


def test_pending_running_suspended() -> None:
    assert job_state("t", job({})).phase == "pending"
    assert job_state("t", job({"active": 1, "ready": 0})).phase == "pending"
    assert job_state("t", job({"active": 1, "ready": 1})).phase == "running"
    assert job_state("t", job({"active": 1})).phase == "running"  # no `ready` (< 1.24)
    queued = job_state("t", job({}, suspend=True))
    assert queued.phase == "pending" and queued.reason is not None and "suspended" in queued.reason
    assert not is_finished(job({"conditions": [cond("Complete", status="False")]}))
    assert is_finished(job({"conditions": [cond("Failed")]}))


def test_pod_problems() -> None:
    unschedulable = {
        "status": {
            "phase": "Pending",
            "conditions": [
                cond("PodScheduled", "Unschedulable", "0/3 nodes: Insufficient gpu", "False")
            ],
        }
    }
    assert pod_problem(unschedulable) == "unschedulable: 0/3 nodes: Insufficient gpu"
    pull = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}],
        }
    }
    assert pod_problem(pull) == "ImagePullBackOff"
    creating = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}],
        }
    }
    assert pod_problem(creating) is None  # slow, not stuck
    assert pod_problem({"status": {"phase": "Running"}}) is None
