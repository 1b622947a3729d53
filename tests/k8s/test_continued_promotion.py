"""A promotion that continues the rung below (``bohb.promotion_resume``) through the Kubernetes
backend: the real trainer in the pods of two Jobs, the second one continuing the first's final
checkpoint from the shared store."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest

import tests.k8s.conftest
from controller.backends.base import Launch
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import Backends, wait_for
from tests.k8s.kubelet import FakeKubelet
from tests.trainer.helpers import TINY
from trainer.contract import (
    FILE_RESULT,
    FILE_TRIAL,
    DataSource,
    TrialResult,
    TrialSpec,
    trial_prefix,
)
from trainer.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
]
SWEEP = "sweep"  # the test backends' sweep


def _trial(store: Store, trial_id: str, budget: float, **over: Any) -> str:
    spec = TrialSpec(
        sweep=SWEEP,
        trial_id=trial_id,
        config=dict(TINY),
        budget=budget,
        dataset="synthetic",
        data=DataSource(subset=192, val_size=100),
        store_root=store.root,
        device="cpu",
        num_workers=0,
        **over,
    )
    key = f"{spec.prefix}/{FILE_TRIAL}"
    store.put_json(key, spec.model_dump(mode="json"))
    return store.url(key)


def test_a_promoted_job_continues_the_lower_jobs_checkpoint(
    backends: Backends,
    apiserver: RunningApiServer,
    trial_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tests.k8s.conftest, "SYNTHETIC", [sys.executable, "-m", "trainer"])
    lower = _trial(trial_store, "it0-c0-r0", 1)
    upper = _trial(
        trial_store, "it0-c0-r1", 3, continue_from={"trial_id": "it0-c0-r0", "budget": 1}
    )
    with FakeKubelet(apiserver.store):
        backend = backends()
        for trial_id, url, rung in (("it0-c0-r0", lower, 0), ("it0-c0-r1", upper, 1)):
            backend.launch(Launch(sweep=SWEEP, trial_id=trial_id, trial_url=url, rung=rung))

            def done(tid: str = trial_id) -> bool | None:
                return backend.poll([tid])[tid].phase == "exited" or None

            wait_for(done, 120.0, f"{trial_id} to finish")
            assert backend.poll([trial_id])[trial_id].exit_code == 0

    def result(tid: str) -> TrialResult:
        raw = trial_store.get_json(f"{trial_prefix(SWEEP, tid)}/{FILE_RESULT}")
        return TrialResult.model_validate(raw)

    below, above = result("it0-c0-r0"), result("it0-c0-r1")
    assert below.status == above.status == "ok"
    assert above.info.continued_from == "it0-c0-r0"
    assert above.info.start_step == below.info.steps == 192 // 32
    assert above.info.steps == 3 * (192 // 32)
