"""Sweep milestones as Kubernetes Events on the controller Job: a whole sweep through the
Kubernetes backend the controller's factory builds, on the API emulation, with the synthetic
trainer in the pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.k8s import backend as k8s_backend
from controller.sweep import runner
from controller.sweep.spec import parse_sweep
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, SYNTHETIC
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import EVENTS, JOBS, PODS
from tests.sweeps import SPACE

pytestmark = pytest.mark.slow


def test_a_sweep_leaves_its_milestones_on_the_controller_job(
    apiserver: RunningApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the controller's own Job: its pod (this test's process) is not the kubelet's to run
    template = {"spec": {"containers": [{"name": "controller", "command": ["true"]}]}}
    controller = apiserver.store.create(
        JOBS,
        NAMESPACE,
        {"metadata": {"name": "ms-kubohb-controller"}, "spec": {"template": template}},
    )
    ref = {
        "apiVersion": "batch/v1", "kind": "Job", "name": "ms-kubohb-controller",
        "uid": controller["metadata"]["uid"], "controller": True,
    }  # fmt: skip
    apiserver.store.create(
        PODS, NAMESPACE, {"metadata": {"name": "ms-ctl", "ownerReferences": [ref]}}
    )
    monkeypatch.setenv("KUBOHB_POD_NAME", "ms-ctl")
    monkeypatch.setenv("KUBOHB_NAMESPACE", NAMESPACE)
    monkeypatch.setattr(k8s_backend, "load_api_client", lambda: (apiserver.api_client(), "given"))
    spec: dict[str, Any] = {
        "name": "ms",
        "space": {"parameters": SPACE},
        "budget": {"unit": "seconds", "min": 1, "max": 3, "eta": 3},
        "bohb": {"seed": 3},
        "stop": {"max_iterations": 1},
        "parallelism": 3,
        "poll_interval_s": 0.1,
        "trainer": {
            "image": "ghcr.io/kubohb/trainer:t",
            "command": SYNTHETIC,
            "dataset": "synthetic",
            "env": {"KUBOHB_MAX_BUDGET": "3"},
        },
        "store": {"url": str(tmp_path / "store")},
        "backend": {"type": "kubernetes", "kubernetes": {"namespace": NAMESPACE}},
    }
    text = yaml.safe_dump(spec)

    def script(job: dict[str, Any], attempt: int) -> str:
        return "hold" if job["metadata"]["name"] == "ms-kubohb-controller" else "run"

    with FakeKubelet(apiserver.store, script):
        outcome = runner.run_sweep(parse_sweep(text), text)
    assert outcome.reason == "max_iterations"
    events = [
        e for e in apiserver.store.list(EVENTS, NAMESPACE)[0]
        if e["involvedObject"]["name"] == "ms-kubohb-controller"
    ]  # fmt: skip
    reasons = [e["reason"] for e in events]
    # one each: a new incumbent per poll would be many, and MILESTONE_EVERY_S keeps it to one
    assert sorted(reasons) == ["NewIncumbent", "SweepFinished", "SweepStarted"]
    for e in events:
        assert e["involvedObject"]["uid"] == controller["metadata"]["uid"]
        assert e["type"] == "Normal" and e["source"]["component"] == "kubohb-controller"
    [finished] = [e for e in events if e["reason"] == "SweepFinished"]
    assert "max_iterations" in finished["message"] and "incumbent it0-" in finished["message"]


def test_without_a_controller_job_no_milestone_is_sent(
    apiserver: RunningApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBOHB_POD_NAME", raising=False)
    monkeypatch.setattr(k8s_backend, "load_api_client", lambda: (apiserver.api_client(), "given"))
    spec = parse_sweep(
        yaml.safe_dump(
            {
                "name": "laptop", "space": {"parameters": SPACE},
                "budget": {"unit": "seconds", "min": 1, "max": 1},
                "stop": {"max_iterations": 1}, "poll_interval_s": 0.1,
                "trainer": {"image": "t", "command": SYNTHETIC, "dataset": "synthetic"},
                "store": {"url": str(tmp_path / "store")},
                "backend": {"type": "kubernetes", "kubernetes": {"namespace": NAMESPACE}},
            }
        )
    )  # fmt: skip
    with FakeKubelet(apiserver.store):
        assert runner.run_sweep(spec, spec.model_dump_json()).reason == "max_iterations"
    assert apiserver.store.list(EVENTS, NAMESPACE)[0] == []
