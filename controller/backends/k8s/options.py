"""Options of the Kubernetes backend, as written under ``backend.kubernetes`` in a sweep spec."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PodPlacement(_Opts):
    """Where trial pods may run; settable per sweep and overridable per budget rung."""

    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    kueue_queue: str | None = None  # sets the kueue.x-k8s.io/queue-name label


class RungOverride(PodPlacement):
    """Overrides for the trials of one budget rung (0 = the smallest budget)."""

    rung: int = Field(ge=0)
    gpu_resource: str | None = None


class KubernetesOptions(PodPlacement):
    namespace: str | None = None  # default: the controller pod's namespace, or the kubeconfig's
    image: str | None = None  # trainer image; default: trainer.image of the sweep
    image_pull_policy: str | None = None
    image_pull_secrets: list[str] = []
    service_account_name: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    # A Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for trial pods (envFrom).
    credentials_secret: str | None = None
    backoff_limit: int = Field(3, ge=0)  # retries of real failures; disruptions are not counted
    # The pod's terminationGracePeriodSeconds: from SIGTERM (spot reclaim, eviction, preemption,
    # Job deletion) to SIGKILL. The trainer finishes its step, checkpoints and uploads in it:
    # 120 s puts a 220 MB checkpoint (Shake-Shake 26 2x96d with its momentum) through at 2 MB/s,
    # and is AWS's spot notice. At most 600 s: cluster-autoscaler's default
    # --max-graceful-termination-sec, to which a scale-down cuts any longer grace.
    termination_grace_s: int = Field(120, ge=1, le=600)
    ttl_seconds_after_finished: int | None = Field(3600, ge=0)
    pending_timeout_s: float = Field(900.0, gt=0)  # unschedulable / image pull failure -> lost
    # Job creates per second, a token bucket of `creates_burst` (null = no client-side limit).
    # 20/s, burst 30 = kube-controller-manager's own client defaults (--kube-api-qps 20,
    # --kube-api-burst 30), a rate every API server takes from one client and about what the
    # cluster's Job controller turns into pods; client-go's 5/10 made a 1,000-trial launch take
    # minutes. Why, and the API Priority and Fairness budget it fits in: docs/kubernetes.md.
    creates_per_second: float | None = Field(20.0, gt=0)
    creates_burst: int = Field(30, ge=1)
    poll_interval_s: float = Field(30.0, gt=0)  # fallback list when the watch is quiet
    scratch_size_limit: str | None = "10Gi"  # emptyDir for /tmp (root file system is read-only)
    run_as_user: int = Field(10001, ge=1)  # the trainer image's non-root user (uid = gid = fsGroup)
    rungs: list[RungOverride] = []
    extra_labels: dict[str, str] = {}
    extra_annotations: dict[str, str] = {}

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "startup_allowance_s" in data:
            raise ValueError(
                "startup_allowance_s was removed: a trial's deadline now counts from when its "
                "container starts (trials.startup_allowance_s), and time spent queued or pending "
                "is bounded by trials.queue_timeout_s; delete this field"
            )
        return data
