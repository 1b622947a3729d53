"""Running time from the API objects: a trial's start is its trainer container's startedAt, never
the Job's creation; pods Pending (a node scaling up, a slow image pull) or Jobs suspended (Kueue)
for longer than the trial's deadline are waited on, not cancelled, and not charged."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.k8s import backend as k8s_backend
from controller.backends.k8s.names import job_name
from controller.backends.k8s.times import container_times
from controller.sweep import runner, scheduler
from controller.sweep.spec import parse_sweep
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, SYNTHETIC, Backends, wait_for
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import JOBS, PODS
from tests.sweeps import SPACE
from trainer.store import FileStore

SWEEP = "sweep"


def _pod_of(server: RunningApiServer, job: str) -> dict[str, Any]:
    (pod,) = [
        p
        for p in server.store.list(PODS, NAMESPACE)[0]
        if p["metadata"]["labels"]["job-name"] == job
    ]
    return pod


def test_a_pod_pending_past_its_deadline_starts_its_clock_when_its_container_runs(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    with FakeKubelet(apiserver.store, lambda job, attempt: "delayed") as kubelet:
        kubelet.pending_seconds = 2.5
        backend = backends()
        launched = time.time()
        backend.launch(
            backends.launch(SWEEP, "slow-start", {"x": 1}, deadline_s=1.0, queue_timeout_s=3600)
        )
        pending = backend.poll(["slow-start"])["slow-start"]
        assert pending.phase == "pending" and pending.started_at is None
        assert pending.run_s == 0
        running = wait_for(
            lambda: (s := backend.poll(["slow-start"])["slow-start"]).phase != "pending" and s,
            what="the delayed pod to run",
        )
        # the start is the container's own startedAt (second precision, as the API server
        # writes it), after the 2.5 s pending: more than the trial's 1 s deadline after launch
        name = job_name(SWEEP, "slow-start")
        started, _ = container_times(_pod_of(apiserver, name))
        assert started is not None and running.started_at == started
        assert started.timestamp() >= launched + 2.5 - 1.0
        done = wait_for(
            lambda: (s := backend.poll(["slow-start"])["slow-start"]).phase == "exited" and s,
            what="the trial to end",
        )
        assert done.exit_code == 0 and done.started_at == started
        _, finished = container_times(_pod_of(apiserver, name))
        assert finished is not None and done.run_s == (finished - started).total_seconds()
        assert done.run_s is not None and done.run_s < 2.5  # the pending time is not in it
        # the Job's activeDeadlineSeconds is the backstop: running deadline + queue limit
        job = apiserver.store.get(JOBS, NAMESPACE, name)
        assert job["spec"]["activeDeadlineSeconds"] == 3601


def test_a_suspended_job_is_pending_until_admitted(
    backends: Backends, apiserver: RunningApiServer, kubelet: FakeKubelet
) -> None:
    backend = backends(kueue_queue="gpu-queue")
    backend.launch(backends.launch(SWEEP, "queued", {"x": 1}, deadline_s=1.0))
    name = job_name(SWEEP, "queued")
    time.sleep(2.0)  # held by "Kueue" for twice the deadline
    held = backend.poll(["queued"])["queued"]
    assert held.phase == "pending" and held.started_at is None and held.run_s == 0
    admitted = datetime.now().astimezone().replace(microsecond=0)
    apiserver.store.mutate(JOBS, NAMESPACE, name, lambda o: o["spec"].update(suspend=False))
    done = wait_for(
        lambda: (s := backend.poll(["queued"])["queued"]).phase == "exited" and s,
        what="the admitted trial to end",
    )
    assert done.exit_code == 0
    assert done.started_at is not None and done.started_at >= admitted
    assert done.run_s is not None and done.run_s < 2.0


@pytest.mark.slow
def test_a_sweep_waits_on_pending_pods_instead_of_cancelling_them(
    tmp_path: Path, apiserver: RunningApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pod pends 2.5 s, more than the trials' 1.5 s deadline: all succeed, none is
    cancelled, and only running time is charged."""
    monkeypatch.setattr(k8s_backend, "load_api_client", lambda: (apiserver.api_client(), "given"))
    monkeypatch.setattr(scheduler, "DEADLINE_SLACK_S", 0.0)  # the loop cancels at the deadline
    spec: dict[str, Any] = {
        "name": "pending",
        "space": {"parameters": SPACE},
        "budget": {"unit": "seconds", "min": 1, "max": 3, "eta": 3},
        "bohb": {"seed": 1},
        "stop": {"max_iterations": 1},
        "parallelism": 2,
        "poll_interval_s": 0.1,
        "trainer": {"image": "trainer:test", "command": SYNTHETIC, "dataset": "synthetic"},
        "trials": {"timeout_s": 1.5},
        "store": {"url": str(tmp_path / "store")},
        "backend": {"type": "kubernetes", "kubernetes": {"namespace": NAMESPACE}},
    }
    text = yaml.safe_dump(spec, sort_keys=False)
    with FakeKubelet(apiserver.store, lambda job, attempt: "delayed") as kubelet:
        kubelet.pending_seconds = 2.5
        outcome = runner.run_sweep(parse_sweep(text), text)
    assert outcome.reason == "max_iterations"
    trials = outcome.state.trials.values()
    assert len(trials) == 4 and {t.state for t in trials} == {"SUCCEEDED"}
    assert all(t.attempts == 1 and t.queued_s >= 1.5 for t in trials)  # waited > its deadline
    assert outcome.state.gpu_seconds < sum(t.queued_s for t in trials)
    assert outcome.state.gpu_seconds == pytest.approx(sum(t.gpu_seconds for t in trials))
    assert all(t.gpu_seconds <= 1.5 for t in trials)
    assert FileStore(tmp_path / "store").exists("pending/state.json")


def test_a_preempted_pod_is_replaced_and_the_trial_finishes_on_the_new_one(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    """A pod preempted while running: the Job makes a new pod (not counted), and the attempt's
    running time includes the second pod's whole run."""
    started = threading.Event()

    def script(job: dict[str, Any], attempt: int) -> str:
        started.set()
        return "preempt" if attempt == 0 else "run"

    with FakeKubelet(apiserver.store, script):
        backend = backends()
        backend.launch(backends.launch(SWEEP, "spot", {"x": 1, "sleep": 1.0}, deadline_s=60))
        assert started.wait(10)
        done = wait_for(
            lambda: (s := backend.poll(["spot"])["spot"]).phase == "exited" and s,
            what="the preempted trial to finish on its second pod",
        )
    assert done.exit_code == 0 and done.run_s is not None and done.run_s >= 1.0
