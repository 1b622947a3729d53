"""The backend factory: local by default; the Kubernetes backend's constructor called as it is
declared (checked against its real signature, without a cluster)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.local.backend import LocalBackend
from controller.sweep import backend as backends
from controller.sweep.spec import parse_sweep
from tests.sweeps import synthetic_sweep


def test_local_is_the_default(tmp_path: Path) -> None:
    data = synthetic_sweep(tmp_path)
    del data["backend"]
    data["backend"] = {"local": {"run_dir": str(tmp_path / "local")}}
    backend = backends.make_backend(parse_sweep(yaml.safe_dump(data)))
    assert isinstance(backend, LocalBackend)


def test_kubernetes_factory_matches_the_backend_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k8s = pytest.importorskip("controller.backends.k8s.backend")
    calls: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            inspect.signature(k8s.KubernetesBackend).bind(**kwargs)  # raises on a mismatch
            calls.append(kwargs)

    monkeypatch.setattr(k8s, "KubernetesBackend", Recorder)
    data = synthetic_sweep(
        tmp_path,
        store={
            "url": "s3://b/p",
            "endpoint_url": "http://127.0.0.1:9",
            "region": "r1",
            "credentials": {"secret": "s3-creds"},
        },
        backend={"type": "kubernetes", "kubernetes": {"namespace": "ns"}},
        trainer={"image": "img:1", "command": ["python", "-m", "trainer"], "env": {"A": "1"}},
    )
    backends.make_backend(parse_sweep(yaml.safe_dump(data)))
    (kw,) = calls
    assert kw["sweep"] == "syn" and kw["store_root"] == "s3://b/p" and kw["image"] == "img:1"
    assert kw["options"].namespace == "ns" and kw["options"].credentials_secret == "s3-creds"
    assert kw["env"] == {
        "A": "1",
        "KUBOHB_STORE_ENDPOINT": "http://127.0.0.1:9",
        "KUBOHB_STORE_REGION": "r1",
        "KUBOHB_STORE_OUTAGE_TOLERANCE_S": "600",  # store.outage_tolerance_s, for the trainer
    }
