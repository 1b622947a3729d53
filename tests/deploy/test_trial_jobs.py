"""The chart and the Kubernetes backend together: trial Jobs built from the sweep spec the chart
renders (GPU/spot example) validate strictly, pass the restricted Pod Security Standard, use the
chart's Secret and trial ServiceAccount, and follow the per-rung placement."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from controller.backends.base import Launch
from controller.backends.k8s.jobs import OwnerRef, build_job
from controller.sweep.spec import SweepSpec, parse_sweep
from tests.deploy.conftest import (
    GPU_SPOT_VALUES,
    NAMESPACE,
    Render,
    one,
    supported_kubernetes,
    validate_strictly,
)
from tests.deploy.pod_security import restricted_violations


def trial_job(spec: SweepSpec, rung: int, owner: str) -> dict[str, Any]:
    options = spec.backend.kubernetes
    assert spec.trainer.image is not None and options.namespace is not None
    launch = Launch(
        sweep=spec.name,
        trial_id=f"t{rung:02d}-0001",
        trial_url=f"{spec.store.root_url()}/{spec.name}/trials/t{rung:02d}-0001/trial.json",
        rung=rung,
        resources=spec.trainer.resources,
        deadline_s=spec.deadline_s(spec.budget.max),
    )
    return build_job(
        launch=launch,
        options=options,
        image=spec.trainer.image,
        command=spec.trainer.command,
        resources=spec.trainer.resources,
        env={},
        namespace=options.namespace,
        owner=OwnerRef(name=owner, uid="0b7c1c9e-1f0a-4a55-9d7e-6f1d2c3b4a59"),
    )


@pytest.fixture(scope="module")
def chart_and_jobs(render: Render) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    objects = render("--values", str(GPU_SPOT_VALUES))
    spec = parse_sweep(one(objects, "ConfigMap")["data"]["sweep.yaml"])
    owner = one(objects, "Job", "controller")["metadata"]["name"]
    return objects, {rung: trial_job(spec, rung, owner) for rung in (0, 3)}


def test_trial_jobs_validate_strictly(
    chart_and_jobs: tuple[list[dict[str, Any]], dict[int, dict[str, Any]]],
) -> None:
    from kubernetes_validate.utils import latest_version

    _, jobs = chart_and_jobs
    manifest = yaml.safe_dump_all(list(jobs.values()))
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", str(latest_version()), "-"],
        input=manifest, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_trial_jobs_validate_on_every_supported_kubernetes(
    chart_and_jobs: tuple[list[dict[str, Any]], dict[int, dict[str, Any]]],
) -> None:
    _, jobs = chart_and_jobs
    errors = [
        e
        for version in supported_kubernetes()
        for e in validate_strictly(list(jobs.values()), version)
    ]
    assert errors == []


def test_trial_pods_are_restricted_and_use_the_charts_identity(
    chart_and_jobs: tuple[list[dict[str, Any]], dict[int, dict[str, Any]]],
) -> None:
    objects, jobs = chart_and_jobs
    trial_account = one(objects, "ServiceAccount", "trial")["metadata"]["name"]
    controller_job = one(objects, "Job", "controller")["metadata"]["name"]
    for job in jobs.values():
        pod = job["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
        assert pod["serviceAccountName"] == trial_account
        assert pod["automountServiceAccountToken"] is False
        assert pod["terminationGracePeriodSeconds"] == 120  # the trainer's stop checkpoint
        assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "kubohb-store"}}]
        assert pod["imagePullSecrets"] == [{"name": "registry-example"}]
        assert job["metadata"]["namespace"] == NAMESPACE
        assert [o["name"] for o in job["metadata"]["ownerReferences"]] == [controller_job]


def test_cheap_rungs_on_spot_top_rung_on_demand(
    chart_and_jobs: tuple[list[dict[str, Any]], dict[int, dict[str, Any]]],
) -> None:
    _, jobs = chart_and_jobs
    cheap, top = (jobs[r]["spec"]["template"]["spec"] for r in (0, 3))
    assert cheap["nodeSelector"]["karpenter.sh/capacity-type"] == "spot"
    assert top["nodeSelector"]["karpenter.sh/capacity-type"] == "on-demand"
    assert top["priorityClassName"] == "kubohb-trials-high"
    queues = {r: j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] for r, j in jobs.items()}
    assert queues == {0: "gpu-spot", 3: "gpu-on-demand"}
    limits = cheap["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] in (1, "1")
