"""Job and Pod status -> TrialState (pure: no I/O).

Jobs and pods arrive as the API server's raw JSON (dicts); the client's model deserialisation is
skipped because it costs more CPU than everything else the backend does.
"""

from __future__ import annotations

import re
from typing import Any

from controller.backends.base import Ending, ExitCode, TrialState

# Container waiting reasons that will not fix themselves: after pending_timeout_s the trial is lost.
STUCK_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_EXIT_CODE_RE = re.compile(r"exit code (\d+)")


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in conditions if c.get("status") == "True"}


def is_finished(job: dict[str, Any]) -> bool:
    conditions = _true_conditions(job)
    return any(
        t in conditions for t in ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
    )


def job_state(trial_id: str, job: dict[str, Any]) -> TrialState:
    """What a Job says about its trial. Pending-too-long is decided elsewhere (needs pods)."""
    conditions = _true_conditions(job)
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return TrialState(
            trial_id=trial_id, phase="exited", exit_code=ExitCode.OK, ending=Ending.EXITED
        )
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is not None:
        reason = failed.get("reason") or "Failed"
        message = failed.get("message") or ""
        match = _EXIT_CODE_RE.search(message)
        ending = Ending.EXITED
        if reason == "PodFailurePolicy":
            code = int(match.group(1)) if match else ExitCode.BAD_TRIAL
            text = f"bad trial: {message}" if message else "bad trial (exit code 2)"
        elif reason == "DeadlineExceeded":
            code, text = ExitCode.DEADLINE, "deadline exceeded (activeDeadlineSeconds)"
            ending = Ending.DEADLINE
        elif reason == "BackoffLimitExceeded":
            code = int(match.group(1)) if match else ExitCode.FAILED
            text = "backoff limit exceeded: every retry failed"
        else:
            code = int(match.group(1)) if match else ExitCode.FAILED
            text = f"{reason}: {message}" if message else reason
        return TrialState(
            trial_id=trial_id, phase="exited", exit_code=code, ending=ending, reason=text
        )
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    if spec.get("suspend"):
        return TrialState(trial_id=trial_id, phase="pending", reason="suspended (queued)")
    # status.ready counts pods past their readiness checks (none here: running = ready); clusters
    # older than 1.24 have no `ready`, so fall back on `active`.
    running = status.get("ready") if "ready" in status else status.get("active")
    if running:
        return TrialState(trial_id=trial_id, phase="running")
    return TrialState(trial_id=trial_id, phase="pending")


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a pod cannot start on its own (unschedulable, image pull failure...), or None."""
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for cond in status.get("conditions") or []:
        scheduled = cond.get("type") == "PodScheduled" and cond.get("status") == "False"
        if scheduled and cond.get("reason") == "Unschedulable":
            return f"unschedulable: {cond.get('message') or 'no node fits'}"
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            message = waiting.get("message") or ""
            return f"{waiting['reason']}: {message}" if message else waiting["reason"]
    return None
