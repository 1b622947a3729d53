"""`kubohb submit` creates the objects the chart would: a `mode: namespace` install's settings plus
a sweep file give, through controller/submit/objects.py, the same ConfigMap (sweep spec) and
controller Job that a `mode: sweep` install of that sweep renders with the same values. One
source of truth: when job.yaml changes and objects.py does not, this fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.submit.objects import (
    MANAGED_BY,
    SETTINGS_KEY,
    SETTINGS_LABEL,
    SPEC_KEY,
    SubmitError,
    SubmitSettings,
    build_configmap,
    build_job,
    submitted_spec,
    sweep_name,
)
from tests.deploy.conftest import (
    CHART,
    NAMESPACE,
    one,
    run_helm,
    supported_kubernetes,
    validate_strictly,
)
from tests.deploy.test_chart import EXPECTED_GRANTS, _grants

INSTALL = (
    "--set", "image.repository=registry.example.com/ml/kubohb-controller",
    "--set", "store.url=s3://my-bucket/kubohb",
    "--set", "store.endpointUrl=https://minio.example.com",
)  # fmt: skip
# Value sets both installs share (the namespace's settings carry them to submit).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "everything": {
        "image": {"tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "imagePullSecrets": ["regcred"],
        "store": {"existingSecret": "team-s3", "region": "eu-west-1"},
        "commonLabels": {"team": "vision"},
        "metrics": {"enabled": True, "port": 9300},
        "kubernetes": {"node_selector": {"pool": "gpu"}, "backoff_limit": 5},
        "controller": {
            "backoffLimit": 4,
            "activeDeadlineSeconds": 86400,
            "ttlSecondsAfterFinished": 600,
            "podLabels": {"cost-center": "ml"},
            "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
            "nodeSelector": {"pool": "system"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml"}],
            "priorityClassName": "batch-high",
            "env": [{"name": "KUBOHB_LOG_LEVEL", "value": "debug"}],
        },
    },
    "created-secret": {"store": {"credentials": {"accessKeyId": "AK", "secretAccessKey": "SK"}}},
}
# Every key the chart's values.yaml gives a `sweep` default for is set, so that Helm's merge
# adds nothing the submitted file does not have.
SWEEP: dict[str, Any] = {
    "name": "cifar",
    "space": {"builtin": "zela2018"},
    "budget": {"unit": "epochs", "min": 1, "max": 9, "eta": 3},
    "bohb": {"seed": 4},
    "stop": {"max_iterations": 2, "max_gpu_hours": 10},
    "parallelism": 8,
    "trainer": {
        "image": "registry.example.com/ml/kubohb-trainer:0.1.0",
        "dataset": "synthetic",
        "data": {},
        "resources": {"gpus": 1, "cpu": "4", "memory": "16Gi"},
    },
}
OPTIONS = {"pending_timeout_s": 300}  # the sweep file's own backend.kubernetes options


def _template(helm: str, release: str, values: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    path = tmp / f"{release}.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = run_helm(
        helm, "template", release, str(CHART), "--namespace", NAMESPACE, *INSTALL, "-f", str(path)
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _settings(helm: str, values: dict[str, Any], tmp: Path) -> SubmitSettings:
    docs = _template(helm, "team", {**values, "mode": "namespace"}, tmp)
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap"} | (
        {"Secret"} if "credentials" in values.get("store", {}) else set()
    )
    cm = one(docs, "ConfigMap", "submit")
    assert cm["metadata"]["labels"][SETTINGS_LABEL] == "true"
    return SubmitSettings.model_validate(json.loads(cm["data"][SETTINGS_KEY]))


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_submit_builds_the_objects_the_chart_renders(helm: str, name: str, tmp_path: Path) -> None:
    values = VALUE_SETS[name]
    settings = _settings(helm, values, tmp_path)
    sweep = sweep_name(SWEEP, "abc123")
    file = {**SWEEP, "backend": {"type": "kubernetes", "kubernetes": OPTIONS}}
    spec = submitted_spec(file, settings, sweep)
    configmap = build_configmap(settings, sweep, yaml.safe_dump(spec))
    job = build_job(settings, sweep)

    # the same sweep installed by the chart, with the namespace's accounts and Secret
    store = {k: v for k, v in values.get("store", {}).items() if k != "credentials"}
    chart_values = {
        **values,
        "store": {**store, "existingSecret": settings.storeSecret},
        "kubernetes": {**values.get("kubernetes", {}), **OPTIONS},
        "sweep": {**SWEEP, "name": sweep},
        "serviceAccount": {"create": False, "name": settings.serviceAccountName},
        "trialServiceAccount": {
            "create": False,
            "name": settings.kubernetes["service_account_name"],
        },
        "rbac": {"create": False},
        "tests": {"enabled": False},
    }
    rendered = _template(helm, sweep, chart_values, tmp_path)
    chart_job = one(rendered, "Job", "controller")
    chart_cm = next(d for d in rendered if d["kind"] == "ConfigMap" and SPEC_KEY in d["data"])

    for obj in (chart_job, chart_cm, chart_job["spec"]["template"]):
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = MANAGED_BY
    assert job == chart_job
    assert configmap["metadata"] == chart_cm["metadata"]
    assert yaml.safe_load(configmap["data"][SPEC_KEY]) == yaml.safe_load(chart_cm["data"][SPEC_KEY])
    assert set(chart_cm["data"]) == {SPEC_KEY, "helm-test.py"}  # helm test's script: not submit's

    errors = [e for v in supported_kubernetes() for e in validate_strictly([job, configmap], v)]
    assert errors == []


def _some_settings() -> SubmitSettings:
    return SubmitSettings.model_validate(
        {
            "version": 1, "release": "team", "namespace": "ml", "chart": "kubohb-0.1.0",
            "appVersion": "0.1.0", "image": "c:1", "serviceAccountName": "team-kubohb",
            "store": {"url": "s3://b/k"}, "kubernetes": {"namespace": "ml", "backoff_limit": 3},
            "controller": {"args": ["run"], "backoffLimit": 1},
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"store": {"url": "s3://other/place"}}, "store.url"),
        ({"backend": {"type": "local"}}, "backend.type"),
        ({"backend": {"kubernetes": {"namespace": "elsewhere"}}}, "backend.kubernetes.namespace"),
        ({"name": "x" * 50}, "name"),
        ({"name": None}, "name"),
    ],
)
def test_a_sweep_file_that_fights_the_install_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    raw = {**SWEEP, **change}
    with pytest.raises(SubmitError, match=rf"^{field}: "):
        submitted_spec(raw, _some_settings(), sweep_name(raw, "abc"))


def test_the_install_owns_store_namespace_and_secret_the_file_may_repeat_its_store() -> None:
    raw = {**SWEEP, "store": {"url": "s3://b/k/"}, "backend": {"kubernetes": {"backoff_limit": 9}}}
    spec = submitted_spec(raw, _some_settings(), "cifar-1")
    assert spec["name"] == "cifar-1" and spec["store"] == {"url": "s3://b/k"}
    assert spec["backend"] == {
        "type": "kubernetes",
        "kubernetes": {"namespace": "ml", "backoff_limit": 9},
    }
    assert raw["name"] == "cifar" and "type" not in raw["backend"]  # the file is left as it was


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_the_namespace_install_lints_validates_and_grants_the_role(
    helm: str, name: str, tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({**VALUE_SETS[name], "mode": "namespace"}))
    lint = run_helm(helm, "lint", "--strict", str(CHART), *INSTALL, "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = _template(helm, "team", {**VALUE_SETS[name], "mode": "namespace"}, tmp_path)
    assert [e for v in supported_kubernetes() for e in validate_strictly(docs, v)] == []
    assert _grants(one(docs, "Role")) == EXPECTED_GRANTS  # what the submitted controllers use
