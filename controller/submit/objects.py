"""The Kubernetes objects of a submitted sweep: its ConfigMap and its controller Job, the same
ones a `mode: sweep` install of the chart renders (helm/kubohb/templates/configmap.yaml and
job.yaml; tests/deploy/test_submit_objects.py renders both and compares them).

Pure: from the namespace's submit settings (the `settings.json` a `mode: namespace` install
writes, ``SubmitSettings``) and a sweep file's mapping, the sweep spec that runs and the two
bodies. Differences from the chart, on purpose: the `app.kubernetes.io/managed-by` label says
``kubohb-submit``; the ConfigMap holds sweep.yaml only (no helm-test.py: `helm test` belongs to
an install); the sweep file is taken as written (the chart's `sweep` defaults in values.yaml do
not apply). Object names follow the chart with the sweep's name as the release name.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CHART = "kubohb"
MANAGED_BY = "kubohb-submit"
SETTINGS_LABEL = "kubohb.io/submit-settings"
SETTINGS_KEY = "settings.json"
SPEC_KEY = "sweep.yaml"
SPEC_DIR = "/etc/kubohb"  # where the controller container reads sweep.yaml (the chart's args)
# The sweep file's sections the namespace install owns, or refuses to change.
OWNED_K8S = ("namespace", "credentials_secret")
_NAME_MAX = 52  # the chart's fullname limit, so that -controller and friends stay within 63


class SubmitError(ValueError):
    """A sweep that cannot be submitted as given; the message names the field and the fix."""


class ControllerValues(BaseModel):
    """The chart's `controller` values (values.yaml documents each)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    args: list[str]
    backoffLimit: int = Field(ge=0)  # noqa: N815 - the chart's value names
    activeDeadlineSeconds: int | None = None  # noqa: N815
    ttlSecondsAfterFinished: int | None = None  # noqa: N815
    resources: dict[str, Any] = {}
    tmpSizeLimit: str = "1Gi"  # noqa: N815
    env: list[dict[str, Any]] = []
    podLabels: dict[str, str] = {}  # noqa: N815
    podAnnotations: dict[str, str] = {}  # noqa: N815
    nodeSelector: dict[str, str] = {}  # noqa: N815
    tolerations: list[dict[str, Any]] = []
    affinity: dict[str, Any] = {}
    priorityClassName: str = ""  # noqa: N815


class MetricsValues(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: bool = False
    port: int = 9090


class SubmitSettings(BaseModel):
    """settings.json of a `mode: namespace` install (helm/kubohb/templates/submit.yaml)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: int = Field(ge=1, le=1)
    release: str
    namespace: str
    chart: str
    appVersion: str  # noqa: N815
    image: str = Field(min_length=1)
    imagePullPolicy: str = "IfNotPresent"  # noqa: N815
    imagePullSecrets: list[str] = []  # noqa: N815
    serviceAccountName: str  # noqa: N815
    storeSecret: str = ""  # noqa: N815
    store: dict[str, Any]
    kubernetes: dict[str, Any]
    controller: ControllerValues
    metrics: MetricsValues = MetricsValues()
    commonLabels: dict[str, str] = {}  # noqa: N815


def sweep_name(raw: dict[str, Any], suffix: str | None) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SubmitError("name: the sweep file must name the sweep")
    full = f"{name}-{suffix}" if suffix else name
    if len(full) > _NAME_MAX:
        raise SubmitError(
            f"name: {full!r} is {len(full)} characters; with --name-suffix it must fit in "
            f"{_NAME_MAX} (object names derive from it): shorten the name or the suffix"
        )
    return full


def fullname(release: str) -> str:
    """The chart's `kubohb.fullname` for a release (no name overrides)."""
    if CHART in release:
        return release[:_NAME_MAX].rstrip("-")
    return f"{release}-{CHART}"[:_NAME_MAX].rstrip("-")


def configmap_name(sweep: str) -> str:
    return fullname(sweep)


def job_name(sweep: str) -> str:
    return f"{fullname(sweep)}-controller"


def submitted_spec(raw: dict[str, Any], settings: SubmitSettings, name: str) -> dict[str, Any]:
    """The sweep as it runs: the file's mapping, named ``name``, with the namespace's store and
    Kubernetes backend (the file's `backend.kubernetes` options merged in as the chart merges
    its `kubernetes` values: defaults, then the file's, then what the install owns)."""
    spec = copy.deepcopy(raw)
    spec["name"] = name
    store = spec.pop("store", None)
    if store is not None:
        url = store.get("url") if isinstance(store, dict) else None
        if url is not None and str(url).rstrip("/") != str(settings.store["url"]).rstrip("/"):
            raise SubmitError(
                f"store.url: {url!r} is not the store the namespace {settings.namespace} was "
                f"installed with ({settings.store['url']!r}); remove `store` from the sweep "
                "file (the install's is used) or submit to a namespace installed for that store"
            )
    backend = spec.pop("backend", None) or {}
    if not isinstance(backend, dict):
        raise SubmitError("backend: must be a mapping")
    kind = backend.get("type", "kubernetes")
    if kind != "kubernetes":
        raise SubmitError(
            f"backend.type: {kind!r}; a submitted sweep runs on Kubernetes: remove `backend` or "
            "set its type to kubernetes"
        )
    options = dict(backend.get("kubernetes") or {})
    for field in OWNED_K8S:
        if field in options:
            raise SubmitError(
                f"backend.kubernetes.{field}: set by the namespace install (namespace "
                f"{settings.namespace}, its store Secret); remove it"
            )
    owned = {k: settings.kubernetes[k] for k in OWNED_K8S if k in settings.kubernetes}
    defaults = {k: v for k, v in settings.kubernetes.items() if k not in OWNED_K8S}
    spec["store"] = copy.deepcopy(settings.store)
    spec["backend"] = {"type": "kubernetes", "kubernetes": {**defaults, **options, **owned}}
    return spec


def labels(settings: SubmitSettings, sweep: str, component: str) -> dict[str, str]:
    """The chart's `kubohb.labels` with the sweep as the release."""
    return {
        "helm.sh/chart": settings.chart,
        "app.kubernetes.io/name": CHART,
        "app.kubernetes.io/instance": sweep,
        "app.kubernetes.io/version": settings.appVersion,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": CHART,
        "kubohb.io/sweep": sweep,
        **settings.commonLabels,
        "app.kubernetes.io/component": component,
    }


def build_configmap(settings: SubmitSettings, sweep: str, spec_yaml: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(sweep),
            "namespace": settings.namespace,
            "labels": labels(settings, sweep, "controller"),
        },
        "data": {SPEC_KEY: spec_yaml},
    }


def build_job(settings: SubmitSettings, sweep: str) -> dict[str, Any]:
    """job.yaml, field for field."""
    c = settings.controller
    metrics = settings.metrics
    pod_labels = {**labels(settings, sweep, "controller"), **c.podLabels}
    annotations = dict(c.podAnnotations)
    if metrics.enabled:
        annotations.update(
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(metrics.port),
                "prometheus.io/path": "/metrics",
            }
        )
    args = list(c.args)
    if metrics.enabled:
        args += ["--metrics-port", str(metrics.port), "--metrics-addr", "0.0.0.0"]
    env: list[dict[str, Any]] = [
        {"name": "KUBOHB_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "KUBOHB_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "HOME", "value": "/tmp"},
        *c.env,
    ]
    container: dict[str, Any] = {
        "name": "controller",
        "image": settings.image,
        "imagePullPolicy": settings.imagePullPolicy,
        "command": ["kubohb"],
        "args": args,
    }
    if metrics.enabled:
        container["ports"] = [{"name": "metrics", "containerPort": metrics.port, "protocol": "TCP"}]
    container["env"] = env
    if settings.storeSecret:
        container["envFrom"] = [{"secretRef": {"name": settings.storeSecret}}]
    container["resources"] = c.resources
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    container["volumeMounts"] = [
        {"name": "sweep", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.serviceAccountName,
        "automountServiceAccountToken": True,
    }
    if settings.imagePullSecrets:
        pod["imagePullSecrets"] = [{"name": n} for n in settings.imagePullSecrets]
    pod["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for key, value in (
        ("priorityClassName", c.priorityClassName),
        ("nodeSelector", c.nodeSelector),
        ("tolerations", c.tolerations),
        ("affinity", c.affinity),
    ):
        if value:
            pod[key] = value
    pod["containers"] = [container]
    pod["volumes"] = [
        {
            "name": "sweep",
            "configMap": {
                "name": configmap_name(sweep),
                "items": [{"key": SPEC_KEY, "path": SPEC_KEY}],
            },
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": c.tmpSizeLimit}},
    ]
    template: dict[str, Any] = {"metadata": {"labels": pod_labels}, "spec": pod}
    if annotations:
        template["metadata"]["annotations"] = annotations
    spec: dict[str, Any] = {
        "backoffLimit": c.backoffLimit,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "FailJob",
                    "onPodConditions": [],
                    "onExitCodes": {
                        "containerName": "controller",
                        "operator": "In",
                        "values": [2, 3, 4],
                    },
                },
            ]
        },
    }
    if c.activeDeadlineSeconds:
        spec["activeDeadlineSeconds"] = c.activeDeadlineSeconds
    if c.ttlSecondsAfterFinished is not None:
        spec["ttlSecondsAfterFinished"] = c.ttlSecondsAfterFinished
    spec["template"] = template
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(sweep),
            "namespace": settings.namespace,
            "labels": labels(settings, sweep, "controller"),
        },
        "spec": spec,
    }
