"""Failed attempts' logs, kept in the trial's folder.

When an attempt fails (it exited non-zero without a result, or ran past its deadline), the loop
asks the backend for the end of its output (``Backend.log_tail``: on Kubernetes the pod's log,
which goes with the pod on a relaunch or at the Job's TTL) and writes it to
``<sweep>/trials/<trial>/logs/attempt-<n>.log`` before anything deletes the attempt. The trainer's
own ``trainer.log`` (its events, on every exit path it controls) sits beside it; these files hold
what it cannot write itself: a segfault, an OOM kill, an import error, a hung process killed at
its deadline. ``kubohb logs`` reads both from any store.
"""

from __future__ import annotations

import logging
import re

from controller import log
from controller.backends.base import Backend
from trainer.contract import FILE_LOG, trial_prefix
from trainer.store import Store, StoreError

LOGS_DIR = "logs"
_ATTEMPT = re.compile(r"attempt-(\d+)\.log")


def attempt_log_key(sweep: str, trial_id: str, attempt: int) -> str:
    return f"{trial_prefix(sweep, trial_id)}/{LOGS_DIR}/attempt-{attempt}.log"


def keep_attempt_log(
    store: Store, backend: Backend, sweep: str, trial_id: str, attempt: int
) -> bool:
    """Best effort (a log is a convenience: a failing backend or store must not fail the sweep):
    True when a log was written."""
    try:
        tail = backend.log_tail(trial_id)
    except Exception as exc:  # any backend's error: the log is lost, the sweep goes on
        log.event("trial.log.unread", logging.WARNING, trial=trial_id, error=str(exc))
        return False
    if not tail:
        return False
    key = attempt_log_key(sweep, trial_id, attempt)
    try:
        store.put(key, tail)
    except StoreError as exc:
        log.event("trial.log.unsaved", logging.WARNING, trial=trial_id, error=str(exc))
        return False
    log.event("trial.log.saved", trial=trial_id, attempt=attempt, bytes=len(tail))
    return True


def saved_attempts(store: Store, sweep: str, trial_id: str) -> list[int]:
    """The attempts of ``trial_id`` whose log the loop kept, in order."""
    prefix = f"{trial_prefix(sweep, trial_id)}/{LOGS_DIR}/"
    found = []
    for key in store.list(prefix):
        match = _ATTEMPT.fullmatch(key.rsplit("/", 1)[-1])
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def trainer_log_key(sweep: str, trial_id: str) -> str:
    return f"{trial_prefix(sweep, trial_id)}/{FILE_LOG}"
