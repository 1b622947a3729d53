"""The trial Job body, built as a plain dict in one place (pure: no I/O).

Every Job passes `kubernetes-validate --strict` and the "restricted" Pod Security Standard; the
tests check both for the default options and a GPU/spot/Kueue/per-rung example.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from controller.backends.base import ExitCode, Launch, Resources
from controller.backends.k8s.names import CONTAINER, LABEL_KUEUE_QUEUE, job_name, trial_labels
from controller.backends.k8s.options import KubernetesOptions, PodPlacement

SCRATCH = "/tmp"
# Caches that libraries write under $HOME or their own defaults: all on the scratch volume,
# because the root file system is read-only.
SCRATCH_ENV = {
    "HOME": SCRATCH,
    "TMPDIR": SCRATCH,
    "XDG_CACHE_HOME": f"{SCRATCH}/.cache",
    "TORCH_HOME": f"{SCRATCH}/.cache/torch",
    "MPLCONFIGDIR": f"{SCRATCH}/.cache/matplotlib",
    "PYTHONDONTWRITEBYTECODE": "1",
}
ANNOTATION_TRIAL_URL = "kubohb.io/trial-url"


class OwnerRef(BaseModel):
    """The controller's own Job: trial Jobs are garbage-collected with it (helm uninstall)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_version: str = "batch/v1"
    kind: str = "Job"
    name: str
    uid: str

    def body(self) -> dict[str, Any]:
        # controller=False: the controller Job does not manage trial Jobs the way the Job controller
        # manages pods. blockOwnerDeletion=False: True needs `update jobs/finalizers`, which the
        # least-privilege Role does not grant (OwnerReferencesPermissionEnforcement).
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }


class TrialPlacement(PodPlacement):
    """The sweep's placement with the trial's rung override applied."""

    gpu_resource: str


def placement_for(options: KubernetesOptions, rung: int) -> TrialPlacement:
    """Sweep-level placement, each field replaced by the rung override where that one sets it."""
    fields = set(PodPlacement.model_fields)
    merged: dict[str, Any] = {f: getattr(options, f) for f in fields}
    merged["gpu_resource"] = options.gpu_resource
    for override in options.rungs:
        if override.rung == rung:
            merged.update({f: getattr(override, f) for f in override.model_fields_set - {"rung"}})
    return TrialPlacement.model_validate(merged)


def pod_failure_policy() -> dict[str, Any]:
    """Fail fast on a bad config; retry disruptions (preemption, eviction) without counting them.

    A disruption is a pod with the DisruptionTarget condition, or a trainer that exited
    ExitCode.CANCELLED (143 = 128 + SIGTERM): the kubelet sent it SIGTERM because the pod is
    going away (a spot reclaim or a deletion that sets no condition, too), and it checkpointed
    first (docs/trainer.md, "Preemption"). Every other non-zero exit (ExitCode.INFRA = 75, OOM,
    SIGKILL after the grace period, crashes) counts against backoffLimit.
    """

    def on_exit(action: str, code: ExitCode) -> dict[str, Any]:
        return {
            "action": action,
            # required by the schemas before 1.29 even beside onExitCodes; the API server takes
            # one of the two, and an empty list counts as not given
            "onPodConditions": [],
            "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [int(code)]},
        }

    return {
        "rules": [
            on_exit("FailJob", ExitCode.BAD_TRIAL),
            # `status` is optional from 1.35 only: earlier schemas require it.
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            on_exit("Ignore", ExitCode.CANCELLED),
        ]
    }


def _resources(resources: Resources, gpu_resource: str) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu:
        requests["cpu"] = resources.cpu  # no CPU limit: throttling slows data loading for nothing
    if resources.memory:
        requests["memory"] = limits["memory"] = resources.memory  # no overcommit: no OOM surprise
    if resources.gpus:
        # extended resources: requests must equal limits
        requests[gpu_resource] = limits[gpu_resource] = str(resources.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _security(run_as: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) security contexts that satisfy the "restricted" Pod Security Standard."""
    seccomp = {"type": "RuntimeDefault"}
    pod = {
        "runAsNonRoot": True,
        "runAsUser": run_as,
        "runAsGroup": run_as,
        "fsGroup": run_as,
        "seccompProfile": seccomp,
    }
    container = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": seccomp,
    }
    return pod, container


def _volumes(options: KubernetesOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    scratch: dict[str, Any] = {}
    if options.scratch_size_limit:
        scratch["sizeLimit"] = options.scratch_size_limit
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": scratch}]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    return volumes, mounts


def _env(launch: Launch, env: dict[str, str]) -> list[dict[str, str]]:
    # The trial URL goes by env, never through a shell string; later entries win on clashes.
    merged = {**SCRATCH_ENV, **env, **launch.env, "KUBOHB_TRIAL": launch.trial_url}
    return [{"name": k, "value": v} for k, v in sorted(merged.items())]


def active_deadline(launch: Launch) -> int | None:
    """A backstop for when no controller watches: the most an attempt can legitimately last.

    The controller enforces the trial's deadline itself, from the container's start. The Job's
    clock starts earlier (at the Job controller's first sync, before scheduling and the image
    pull; it pauses while Kueue holds the Job suspended and restarts on admission), so the
    backstop is the running deadline plus the queue limit. Without a queue limit, none.
    """
    if launch.deadline_s is None or launch.queue_timeout_s is None:
        return None
    return math.ceil(launch.deadline_s + launch.queue_timeout_s)


def build_job(
    *,
    launch: Launch,
    options: KubernetesOptions,
    image: str,
    command: list[str],
    resources: Resources,
    env: dict[str, str],
    namespace: str,
    owner: OwnerRef | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job of one trial."""
    if not command:
        raise ValueError("command: the trainer command must not be empty")
    place = placement_for(options, launch.rung)
    labels = trial_labels(launch.sweep, launch.trial_id, launch.rung)
    job_labels = {**options.extra_labels, **labels}
    if place.kueue_queue:
        job_labels[LABEL_KUEUE_QUEUE] = place.kueue_queue
    pod_security, container_security = _security(options.run_as_user)
    volumes, mounts = _volumes(options)

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": options.image or image,
        "command": list(command),
        "env": _env(launch, env),
        "resources": _resources(resources, place.gpu_resource),
        "securityContext": container_security,
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",  # the log tail explains a crash
    }
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    if options.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": options.credentials_secret}}]

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # SIGTERM to SIGKILL: the trainer's stop checkpoint and its upload fit in it
        "terminationGracePeriodSeconds": options.termination_grace_s,
        "automountServiceAccountToken": False,  # the trainer never talks to the API server
        "securityContext": pod_security,
        "containers": [container],
        "volumes": volumes,
    }
    optional_pod_fields = {
        "serviceAccountName": options.service_account_name,
        "nodeSelector": place.node_selector,
        "tolerations": place.tolerations,
        "affinity": place.affinity,
        "priorityClassName": place.priority_class_name,
        "runtimeClassName": place.runtime_class_name,
    }
    pod_spec.update({k: v for k, v in optional_pod_fields.items() if v})
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in options.image_pull_secrets]

    metadata: dict[str, Any] = {
        "name": job_name(launch.sweep, launch.trial_id),
        "namespace": namespace,
        "labels": job_labels,
        "annotations": {**options.extra_annotations, ANNOTATION_TRIAL_URL: launch.trial_url},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner.body()]

    spec: dict[str, Any] = {
        "backoffLimit": options.backoff_limit,
        "completions": 1,
        "parallelism": 1,
        "podFailurePolicy": pod_failure_policy(),
        "template": {
            "metadata": {"labels": {**options.extra_labels, **labels}},
            "spec": pod_spec,
        },
    }
    deadline = active_deadline(launch)
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if options.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = options.ttl_seconds_after_finished
    if place.kueue_queue:
        spec["suspend"] = True  # Kueue admits (unsuspends) the Job when its quota allows
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}
