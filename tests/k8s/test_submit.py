"""`kubohb submit --wait` against the API emulation: the namespace part of the chart (`mode:
namespace`, rendered by helm) applied to the emulator, sweeps submitted with the CLI, the fake
kubelet running the controller Job's own command (`kubohb run /etc/kubohb/sweep.yaml ...` from
its ConfigMap volume, talking to the emulator through a kubeconfig) and the trial Jobs it
creates (the synthetic trainer). Exit codes 0 / 3 / 4 for a finished, a capped and a goal-missed
sweep; a second submit creates nothing; a different file under the same name is refused; a
controller Job that failed with an error is replaced and the sweep resumes."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.cli import main
from controller.submit.arguments import parse_duration
from controller.submit.objects import job_name
from controller.sweep.journal import load_state
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, wait_for
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.namespace import install_namespace, submitted_sweep, write_kubeconfig
from tests.k8s.objects import CONFIGMAPS, JOBS
from trainer.store import open_store


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    store_url = (tmp_path / "store").as_uri()
    with RunningApiServer() as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        install_namespace(server, store_url)

        def script(job: dict[str, Any], attempt: int) -> str:
            return "run"

        with FakeKubelet(server.store, script, env={"KUBECONFIG": str(kubeconfig)}) as kubelet:
            yield {"server": server, "kubelet": kubelet, "store_url": store_url, "tmp": tmp_path}


def sweep_file(tmp: Path, name: str, **stop: Any) -> Path:
    spec = submitted_sweep(name, 5, **stop)
    spec["backend"] = {"type": "kubernetes", "kubernetes": {"poll_interval_s": 1}}  # merged in
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def submit(path: Path, *extra: str) -> int:
    return main(
        ["submit", str(path), "--wait", "--poll-interval", "0.2", "--timeout", "180", *extra]
    )


def creates(server: RunningApiServer) -> dict[tuple[str, str, str], int]:
    return {k: n for k, n in server.store.creates.items() if k[0] in (JOBS, CONFIGMAPS)}


@pytest.mark.slow
def test_submit_waits_and_exits_with_the_sweeps_code(
    cluster: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    server, tmp = cluster["server"], cluster["tmp"]
    finished = sweep_file(tmp, "fin")
    assert submit(finished, "--name-suffix", "c0ffee") == 0
    out = capsys.readouterr().out
    assert "created ConfigMap and controller Job" in out and "sweep ended: max_iterations" in out
    assert "trials done" in out  # progress lines for the CI log
    assert submit(sweep_file(tmp, "cap", max_trials=2)) == 3
    assert submit(sweep_file(tmp, "goal", goal={"loss_below": 1e-9})) == 4

    # the controller Jobs ended Complete (--stopped-is-success), the stop reason in the store
    for name, reason in (
        ("fin-c0ffee", "max_iterations"),
        ("cap", "max_trials"),
        ("goal", "max_iterations"),
    ):
        job = server.store.get(JOBS, NAMESPACE, job_name(name))
        assert [c["type"] for c in job["status"]["conditions"]][-1] == "Complete"
        state = load_state(open_store(cluster["store_url"]), name)
        assert state is not None and state.stop_reason == reason
        assert all(t.state == "SUCCEEDED" for t in state.trials.values())

    # the same command again: nothing created, the same answer
    before = creates(server)
    assert submit(finished, "--name-suffix", "c0ffee") == 0
    assert "already submitted: nothing created" in capsys.readouterr().out
    assert creates(server) == before

    # the same name with a different file: refused, naming what differs
    changed = sweep_file(tmp, "fin", max_trials=50)
    assert submit(changed, "--name-suffix", "c0ffee") == 2
    assert "differs in: stop" in capsys.readouterr().err
    assert creates(server) == before


@pytest.mark.slow
def test_a_smoke_submit_runs_two_tiny_trials_under_its_own_name(cluster: dict[str, Any]) -> None:
    path = sweep_file(cluster["tmp"], "big", max_gpu_hours=100)
    assert submit(path, "--smoke", "--name-suffix", "pr7") == 0
    state = load_state(open_store(cluster["store_url"]), "big-pr7-smoke")
    assert state is not None and state.stop_reason == "max_iterations"
    assert len(state.trials) == 2 and {t.budget for t in state.trials.values()} == {20.0}
    assert (
        load_state(open_store(cluster["store_url"]), "big-pr7") is None
    )  # the real one: untouched
    cluster["server"].store.get(JOBS, NAMESPACE, job_name("big-pr7-smoke"))


@pytest.mark.slow
def test_a_failed_controller_is_replaced_and_the_sweep_resumes(cluster: dict[str, Any]) -> None:
    server, tmp = cluster["server"], cluster["tmp"]
    path = sweep_file(tmp, "again")
    name = job_name("again")
    held: list[str] = []

    def script(job: dict[str, Any], attempt: int) -> str:  # the first controller never starts
        if job["metadata"]["name"] == name and not held:
            held.append(job["metadata"]["uid"])
            return "hold"
        return "run"

    cluster["kubelet"].script = script
    assert main(["submit", str(path)]) == 0  # no --wait: submitted, returns at once
    wait_for(lambda: held, what="the first controller Job's pod")

    def fail(job: dict[str, Any]) -> None:  # as if the controller pod had crashed 10 times
        job["status"] = {
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
        }

    server.store.mutate(JOBS, NAMESPACE, name, fail)
    uid = server.store.get(JOBS, NAMESPACE, name)["metadata"]["uid"]
    assert submit(path) == 0
    replaced = server.store.get(JOBS, NAMESPACE, name)
    assert replaced["metadata"]["uid"] != uid
    assert ((JOBS, NAMESPACE, name), "Orphan") in server.store.deletes  # trial Jobs kept


def test_a_timeout_gives_up_and_cancels_only_when_asked(
    cluster: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    server, tmp = cluster["server"], cluster["tmp"]
    cluster["kubelet"].script = lambda job, attempt: "hold"  # the controller never starts
    path = sweep_file(tmp, "slow")
    assert main(["submit", str(path), "--wait", "--poll-interval", "0.1", "--timeout", "1"]) == 1
    assert "gave up after --timeout 1s; the sweep goes on" in capsys.readouterr().err
    server.store.get(JOBS, NAMESPACE, job_name("slow"))  # still there
    argv = ["submit", str(path), "--wait", "--timeout", "0.5", "--cancel-on-timeout"]
    assert main(argv) == 1
    assert "already submitted" in capsys.readouterr().out
    assert ((JOBS, NAMESPACE, job_name("slow")), "Background") in server.store.deletes


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("600", 600.0), ("1.5", 1.5), ("45m", 2700.0), ("2h30m", 9000.0), ("90s", 90.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5 min", "-3", "1d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="a duration such as"):
        parse_duration(text)
