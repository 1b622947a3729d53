"""Kubernetes names and labels of trial Jobs, derived in one place.

Job names are deterministic (same sweep + trial -> same name) so that a retried create is
idempotent: the API server answers 409 and no second Job exists for a trial.
"""

from __future__ import annotations

import hashlib

MAX_NAME = 63  # a Job name becomes the pods' `job-name` label value: at most 63 characters
_HASH_LEN = 8

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_SWEEP = "kubohb.io/sweep"
LABEL_TRIAL = "kubohb.io/trial"
LABEL_RUNG = "kubohb.io/rung"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
CONTAINER = "trainer"


def job_name(sweep: str, trial_id: str) -> str:
    """`<sweep>-<trial>` truncated, plus a hash of both.

    The hash is always there: "a-b" + "c" and "a" + "b-c" would otherwise collide in one namespace.
    """
    digest = hashlib.sha256(f"{sweep}/{trial_id}".encode()).hexdigest()[:_HASH_LEN]
    prefix = f"{sweep}-{trial_id}"[: MAX_NAME - _HASH_LEN - 1].rstrip("-")
    return f"{prefix}-{digest}"


def trial_labels(sweep: str, trial_id: str, rung: int) -> dict[str, str]:
    """Labels of a trial Job and its pods (sweep and trial ids are DNS labels: valid values)."""
    return {
        LABEL_NAME: "kubohb",
        LABEL_COMPONENT: "trial",
        LABEL_MANAGED_BY: "kubohb",
        LABEL_SWEEP: sweep,
        LABEL_TRIAL: trial_id,
        LABEL_RUNG: str(rung),
    }


def sweep_selector(sweep: str) -> str:
    """Label selector of all trial Jobs of one sweep."""
    return f"{LABEL_MANAGED_BY}=kubohb,{LABEL_SWEEP}={sweep}"
