"""Fixtures of the Kubernetes backend tests: the API server emulation on 127.0.0.1, the fake Job
controller/kubelet, a file store with trial specs, and a backend factory."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.backends.base import Launch, Resources
from controller.backends.k8s.backend import KubernetesBackend
from controller.backends.k8s.options import KubernetesOptions
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.kubelet import FakeKubelet
from tests.sweeps import merged, synthetic_sweep
from trainer.contract import FILE_TRIAL, TrialSpec
from trainer.store import Store, open_store

NAMESPACE = "kubohb-test"
SYNTHETIC = [sys.executable, "-m", "trainer.synthetic"]


@pytest.fixture
def apiserver() -> Iterator[RunningApiServer]:
    with RunningApiServer() as server:
        yield server


@pytest.fixture
def kubelet(apiserver: RunningApiServer) -> Iterator[FakeKubelet]:
    with FakeKubelet(apiserver.store) as fake:
        yield fake


@pytest.fixture
def trial_store(tmp_path: Any) -> Store:
    return open_store((tmp_path / "store").as_uri())


class Backends:
    """Makes backends on the emulator (several: a restarted controller is a new backend)."""

    def __init__(self, server: RunningApiServer, store: Store) -> None:
        self.server = server
        self.store = store
        self.made: list[KubernetesBackend] = []

    def __call__(
        self,
        sweep: str = "sweep",
        environ: dict[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        **options: Any,
    ) -> KubernetesBackend:
        opts = KubernetesOptions(namespace=NAMESPACE, **{"poll_interval_s": 2.0, **options})
        backend = KubernetesBackend(
            sweep=sweep,
            store_root=self.store.root,
            options=opts,
            image="ghcr.io/kubohb/trainer:test",
            command=SYNTHETIC,
            resources=Resources(cpu="1", memory="1Gi"),
            env={},
            api_client=self.server.api_client(),
            environ=environ or {},
            **({"clock": clock} if clock else {}),
        )
        self.made.append(backend)
        return backend

    def launch(self, sweep: str, trial_id: str, config: dict[str, Any], **kw: Any) -> Launch:
        """Write trial.json and return the Launch for it."""
        spec = TrialSpec(
            sweep=sweep, trial_id=trial_id, config=config, budget=1, store_root=self.store.root
        )
        key = f"{spec.prefix}/{FILE_TRIAL}"
        self.store.put_json(key, spec.model_dump(mode="json"))
        return Launch(sweep=sweep, trial_id=trial_id, trial_url=self.store.url(key), **kw)


@pytest.fixture
def backends(apiserver: RunningApiServer, trial_store: Store) -> Iterator[Backends]:
    made = Backends(apiserver, trial_store)
    yield made
    for backend in made.made:
        backend.close()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (the thing waited on runs in threads)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def k8s_sweep(tmp: Path, name: str, **over: Any) -> dict[str, Any]:
    """``tests.sweeps.synthetic_sweep`` on the Kubernetes backend (namespace NAMESPACE) with the
    synthetic trainer as the pods' command; ``over`` merges as there."""
    spec = synthetic_sweep(
        tmp, name, trainer={"image": "ghcr.io/kubohb/trainer:t", "command": SYNTHETIC}
    )
    spec["backend"] = {"type": "kubernetes", "kubernetes": {"namespace": NAMESPACE}}
    spec["poll_interval_s"] = 0.1
    return merged(spec, over)
