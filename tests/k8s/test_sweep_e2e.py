"""A whole sweep through the Kubernetes backend, end to end: `run_sweep` with the backend the
controller's factory builds (only its API client points at the emulator), the synthetic trainer as
the pods' processes, results in moto's S3 with credentials from a Kubernetes Secret (envFrom), a
controller crash mid-sweep and a restart that adopts the running Jobs, and a preempted pod."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from controller.backends.k8s import backend as k8s_backend
from controller.backends.k8s.names import LABEL_TRIAL
from controller.sweep import runner
from controller.sweep.journal import load_state
from controller.sweep.spec import parse_sweep
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, SYNTHETIC
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import JOBS, SECRETS
from tests.servers import S3Endpoint
from trainer.contract import FILE_RESULT, trial_prefix
from trainer.store import Store

SWEEP = "k8s-e2e"


class ControllerCrash(Exception):  # noqa: N818 - a simulated SIGKILL, not an error
    pass


def sweep_text(store: Store, s3: S3Endpoint) -> str:
    spec: dict[str, Any] = {
        "name": SWEEP,
        "space": {
            "parameters": [
                {"name": "x", "type": "float", "low": -3.0, "high": 3.0},
                {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
                # the synthetic trainer sleeps this long: Jobs are still running at the crash
                {"name": "sleep", "type": "categorical", "choices": [1.0]},
            ]
        },
        "budget": {"unit": "seconds", "min": 1, "max": 9, "eta": 3},
        "bohb": {"seed": 3},
        "stop": {"max_iterations": 2},
        "parallelism": 4,
        "poll_interval_s": 0.1,
        "trainer": {
            "image": "ghcr.io/kubohb/trainer:e2e",
            "command": SYNTHETIC,
            "dataset": "synthetic",
            "env": {"KUBOHB_MAX_BUDGET": "9"},
        },
        "trials": {"startup_allowance_s": 60, "max_attempts": 2},
        "store": {
            "url": store.root,
            "endpoint_url": s3.endpoint_url,
            "region": s3.region,
            "credentials": {"secret": "kubohb-s3"},
        },
        "backend": {
            "type": "kubernetes",
            "kubernetes": {"namespace": NAMESPACE, "poll_interval_s": 5, "creates_per_second": 50},
        },
    }
    return yaml.safe_dump(spec, sort_keys=False)


@pytest.mark.slow
def test_sweep_with_controller_restart_and_preemption(
    apiserver: RunningApiServer,
    s3_server: S3Endpoint,
    s3_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    apiserver.store.create(
        SECRETS,
        NAMESPACE,
        {
            "metadata": {"name": "kubohb-s3"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()},
        },
    )
    # the factory's backend, with its API client on the emulator instead of a kubeconfig
    monkeypatch.setattr(k8s_backend, "load_api_client", lambda: (apiserver.api_client(), "given"))
    preempted: list[str] = []

    def script(job: dict[str, Any], attempt: int) -> str:
        if not preempted and attempt == 0:  # the first pod of the sweep is preempted once
            preempted.append(job["metadata"]["labels"][LABEL_TRIAL])
            return "preempt"
        return "run"

    text = sweep_text(s3_store, s3_server)
    spec = parse_sweep(text)
    running_at_crash: set[str] = set()

    def crash(state: Any) -> None:
        live = {t for t, r in state.trials.items() if r.state == "RUNNING"}
        if len(state.trials) >= 6 and live:
            running_at_crash.update(live)
            raise ControllerCrash

    kubelet_env = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": s3_server.region}
    with FakeKubelet(apiserver.store, script, env=kubelet_env) as kubelet:
        with pytest.raises(ControllerCrash):
            runner.run_sweep(spec, text, on_tick=crash)
        unfinished = {
            j["metadata"]["labels"][LABEL_TRIAL]
            for j in apiserver.store.list(JOBS, NAMESPACE)[0]
            if not (j.get("status") or {}).get("conditions")
        }
        outcome = runner.run_sweep(spec, text)  # the restarted controller

    assert outcome.reason == "max_iterations" and outcome.exit_code == 0
    state = load_state(s3_store, SWEEP)
    assert state is not None
    trials = state.trials
    assert len(trials) == 17  # budgets 1, 3, 9 (eta 3), two brackets
    # no lost result: every trial succeeded, on its first attempt, with its result in S3
    assert {t.state for t in trials.values()} == {"SUCCEEDED"}, {
        k: (t.state, t.error) for k, t in trials.items() if t.state != "SUCCEEDED"
    }
    for trial_id in trials:
        assert s3_store.exists(f"{trial_prefix(SWEEP, trial_id)}/{FILE_RESULT}")
    # the restart adopted Jobs that were still running, and no trial ever got a second Job
    assert running_at_crash and unfinished & running_at_crash
    jobs = {k[2]: n for k, n in apiserver.store.creates.items() if k[0] == JOBS}
    assert len(jobs) == 17 and set(jobs.values()) == {1}
    # the preempted pod was retried by the Job (not counted), and the trial succeeded once
    (victim,) = preempted
    assert trials[victim].attempts == 1 and trials[victim].state == "SUCCEEDED"
    assert any(outcome == "exit 137: Ignore" for _, _, outcome in kubelet.history)
    assert apiserver.handler is not None and apiserver.handler.rejected == []
    assert apiserver.counts["FETCH jobs"] == 0  # status by watch, never per-trial GETs
