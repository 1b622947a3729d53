"""A trial whose pod crashes where the trainer cannot write its own log (a segfault) leaves the
tail of the pod's log in the store, read back by `kubohb logs`; the pod itself is gone with the
relaunch. A whole sweep through the Kubernetes backend the controller's factory builds, on the
API emulation, with a pod command that prints and dies by SIGSEGV."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from controller.backends.base import LOG_TAIL_BYTES
from controller.backends.k8s import backend as k8s_backend
from controller.cli import main
from controller.sweep import runner
from controller.sweep.journal import load_state
from controller.sweep.logs import attempt_log_key
from controller.sweep.spec import parse_sweep
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, k8s_sweep
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import JOBS, PODS
from trainer.store import open_store

pytestmark = pytest.mark.slow

# prints a flood (more than the kept tail), then its last words, then dies the hard way
CRASH = (
    "import os, signal, sys\n"
    "sys.stdout.write(('filler line of output\\n') * 20000)\n"
    "print('loading', os.environ['KUBOHB_TRIAL'], flush=True)\n"
    "sys.stderr.write('Fatal Python error: Segmentation fault\\n'); sys.stderr.flush()\n"
    "os.kill(os.getpid(), signal.SIGSEGV)\n"
)


def test_a_crashed_pods_log_tail_survives_in_the_store(
    apiserver: RunningApiServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    monkeypatch.setattr(k8s_backend, "load_api_client", lambda: (apiserver.api_client(), "given"))
    spec = k8s_sweep(
        tmp_path,
        "crashes",
        budget={"min": 1, "max": 1},
        stop={"max_iterations": 1},
        trainer={"command": [sys.executable, "-c", CRASH]},
        trials={"max_attempts": 2},
    )
    text = yaml.safe_dump(spec)
    with FakeKubelet(apiserver.store):
        outcome = runner.run_sweep(parse_sweep(text), text)
    assert outcome.reason == "max_iterations"
    store = open_store(spec["store"]["url"])
    state = load_state(store, "crashes")
    assert state is not None
    [(trial, record)] = state.trials.items()
    assert record.state == "FAILED" and record.attempts == 2, record
    for attempt in (1, 2):
        kept = store.get(attempt_log_key("crashes", trial, attempt))
        assert b"Fatal Python error: Segmentation fault" in kept
        assert f"/trials/{trial}/trial.json".encode() in kept  # this trial's own pod
        assert len(kept) <= LOG_TAIL_BYTES and kept.startswith(b"filler")  # the tail, clipped
    # the first attempt's Job and pods went at the relaunch: only the store has its log now
    owners = {
        p["metadata"]["ownerReferences"][0]["uid"] for p in apiserver.store.list(PODS, NAMESPACE)[0]
    }
    assert len(owners) == 1
    assert sum(n for key, n in apiserver.store.creates.items() if key[0] == JOBS) == 2

    url = spec["store"]["url"] + "/crashes"
    assert main(["logs", url, trial]) == 0
    newest = capsysbinary.readouterr()
    assert newest.out == store.get(attempt_log_key("crashes", trial, 2))
    assert b"attempt 2" in newest.err
    assert main(["logs", url, trial, "--attempt", "1"]) == 0
    assert capsysbinary.readouterr().out == store.get(attempt_log_key("crashes", trial, 1))
    assert main(["logs", url, trial, "--attempt", "3"]) == 1
    assert b"no log kept for attempt 3" in capsysbinary.readouterr().err
    assert main(["logs", url, "no-such-trial"]) == 2
