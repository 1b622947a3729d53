"""A trainer that stopped on SIGTERM (exit 143, after its checkpoint) is a disruption: the Job's
podFailurePolicy retries it without counting it against backoffLimit, as a preempted pod."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

import tests.k8s.conftest
from controller.backends.base import ExitCode
from controller.backends.k8s.names import job_name
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, Backends, wait_for
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import JOBS
from trainer.contract import FILE_RESULT, TrialResult, trial_prefix
from trainer.store import Store

SWEEP = "sweep"


def test_a_trainer_stopped_by_sigterm_is_retried_without_counting(
    backends: Backends,
    apiserver: RunningApiServer,
    trial_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mark = tmp_path / "stopped-once"
    # the first pod "gets SIGTERM" and exits as the trainer then does; the next one trains
    marker, python = shlex.quote(str(mark)), shlex.quote(sys.executable)
    script = (
        f"if [ ! -e {marker} ]; then touch {marker}; exit {int(ExitCode.CANCELLED)}; fi; "
        f"exec {python} -m trainer.synthetic"
    )
    monkeypatch.setattr(tests.k8s.conftest, "SYNTHETIC", ["sh", "-c", script])
    with FakeKubelet(apiserver.store) as kubelet:
        backend = backends(backoff_limit=0)  # a counted failure would fail the Job at once
        backend.launch(backends.launch(SWEEP, "s", {"x": 0.2}))

        def done() -> bool | None:
            return backend.poll(["s"])["s"].phase == "exited" or None

        wait_for(done, 60.0, "the stopped trial to finish on its second pod")
        state = backend.poll(["s"])["s"]
    assert (state.exit_code, state.ending) == (0, "exited")
    name = job_name(SWEEP, "s")
    assert [h for h in kubelet.history if h[0] == name] == [
        (name, 0, "exit 143: Ignore"),
        (name, 1, "succeeded"),
    ]
    assert apiserver.store.get(JOBS, NAMESPACE, name)["status"]["failed"] == 0
    raw = trial_store.get_json(f"{trial_prefix(SWEEP, 's')}/{FILE_RESULT}")
    assert TrialResult.model_validate(raw).status == "ok"
