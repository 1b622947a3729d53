"""The local backend against real processes: launch, exit codes, deadlines, cancel, GPU slots,
log upload, adoption by a new backend instance (a restarted controller), and lost trials."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from controller.backends.base import ExitCode, Launch
from controller.backends.local.backend import LocalBackend
from tests.controller.local_trials import launch as _launch
from tests.controller.local_trials import sh_backend as _backend
from tests.controller.local_trials import wait as _wait
from trainer.store import FileStore


def test_exit_code_env_and_log_upload(tmp_path: Path) -> None:
    backend = _backend(
        tmp_path, 'echo "cvd=[$CUDA_VISIBLE_DEVICES] trial=$KUBOHB_TRIAL $1"; exit 3'
    )
    assert backend.capacity() is None
    _launch(backend, "t1")
    state = _wait(backend, "t1", "exited")
    assert state.exit_code == 3
    log = (tmp_path / "store" / "sw" / "trials" / "t1" / "trainer.log").read_text()
    assert "cvd=[] trial=file:///x/t1 --trial" in log
    assert "attempt 1 ended: exit 3" in log
    # a relaunch is a new attempt: the old exit file is kept aside, the new one replaces it
    _launch(backend, "t1")
    assert _wait(backend, "t1", "exited").exit_code == 3
    assert (tmp_path / "local" / "sw" / "t1" / "exit.1.json").exists()
    assert json.loads((tmp_path / "local" / "sw" / "t1" / "exit.json").read_text())["attempt"] == 2
    # the log spans the trial's attempts
    log = (tmp_path / "store" / "sw" / "trials" / "t1" / "trainer.log").read_text()
    assert log.index("attempt 1 ended: exit 3") < log.index("attempt 2 ended: exit 3")


def test_unknown_trial_is_lost(tmp_path: Path) -> None:
    state = _backend(tmp_path, "true").poll(["nope"])["nope"]
    assert state.phase == "lost" and state.reason == "never started"


def test_deadline_and_cancel(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep 60")
    _launch(backend, "slow", deadline=0.5)
    _launch(backend, "doomed")
    assert backend.poll(["doomed"])["doomed"].phase == "running"
    _launch(backend, "doomed")  # idempotent while it runs: no second process
    assert (
        json.loads((tmp_path / "local" / "sw" / "doomed" / "proc.json").read_text())["attempt"] == 1
    )
    state = _wait(backend, "slow", "exited")
    assert state.exit_code == ExitCode.DEADLINE and "deadline exceeded" in (state.reason or "")
    backend.cancel("doomed")
    state = _wait(backend, "doomed", "exited")
    assert state.exit_code == ExitCode.CANCELLED and state.reason == "cancelled"


def test_gpu_slots(tmp_path: Path) -> None:
    backend = _backend(
        tmp_path, 'echo "cvd=$CUDA_VISIBLE_DEVICES"; sleep 30', gpus=[0, 1], gpus_per_trial=1
    )
    assert backend.capacity() == 2
    _launch(backend, "a")
    _launch(backend, "b")
    with pytest.raises(RuntimeError, match="no free GPU slot"):
        _launch(backend, "c")
    used = sorted(
        json.loads((tmp_path / "local" / "sw" / t / "proc.json").read_text())["gpus"][0]
        for t in ("a", "b")
    )
    assert used == [0, 1]
    for t in ("a", "b"):
        backend.cancel(t)
        _wait(backend, t, "exited")
    with pytest.raises(ValueError, match=r"trainer\.resources\.gpus"):
        _backend(tmp_path, "true", gpus=[], gpus_per_trial=1)


def test_a_new_backend_adopts_running_trials(tmp_path: Path) -> None:
    first = _backend(tmp_path, "sleep 1.5; exit 0")
    _launch(first, "t")
    # A restarted controller: a new backend object that did not start the process.
    second = _backend(tmp_path, "sleep 1.5; exit 0")
    assert second.adopt() == {"t"}
    assert second.poll(["t"])["t"].phase == "running"
    second.launch(Launch(sweep="sw", trial_id="t", trial_url="file:///x/t"))  # no double start
    assert _wait(second, "t", "exited").exit_code == 0
    assert second.adopt() == set()


def test_a_wrapper_started_by_a_controller_killed_before_naming_it_is_adopted(
    tmp_path: Path,
) -> None:
    """launch() records the attempt's token before it starts the wrapper and the wrapper's pid
    after; a controller SIGKILLed between the two must not start the trial a second time."""
    runs = tmp_path / "runs.txt"
    first = _backend(tmp_path, f"echo run >> {runs}; sleep 1.5; exit 0")
    _launch(first, "t")
    path = tmp_path / "local" / "sw" / "t" / "proc.json"
    named = json.loads(path.read_text())
    path.write_text(json.dumps({**named, "pid": None, "start_time": None}))  # the kill's window
    second = _backend(tmp_path, f"echo run >> {runs}; sleep 1.5; exit 0")
    assert second.adopt() == {"t"}
    assert json.loads(path.read_text()) == named  # found by its token, named again
    second.launch(Launch(sweep="sw", trial_id="t", trial_url="file:///x/t"))  # no double start
    assert _wait(second, "t", "exited").exit_code == 0
    assert runs.read_text() == "run\n"


def test_a_launch_recorded_but_never_started_is_lost_and_starts_on_relaunch(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "local" / "sw" / "t"
    folder.mkdir(parents=True)
    record: dict[str, object] = {
        "pid": None,
        "start_time": None,
        "attempt": 1,
        "gpus": [],
        "token": "0" * 16,
    }
    (folder / "proc.json").write_text(json.dumps(record))  # killed before the wrapper started
    backend = _backend(tmp_path, "exit 0")
    assert backend.adopt() == set()
    state = backend.poll(["t"])["t"]
    assert state.phase == "lost" and state.reason == "never started"
    _launch(backend, "t")
    assert _wait(backend, "t", "exited").exit_code == 0
    assert json.loads((folder / "proc.json").read_text())["attempt"] == 2


def test_a_killed_wrapper_is_lost_and_its_trainer_is_stopped_on_relaunch(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep 60")
    _launch(backend, "t")
    folder = tmp_path / "local" / "sw" / "t"
    end = time.monotonic() + 10
    while not (folder / "trainer.json").exists() and time.monotonic() < end:
        time.sleep(0.05)
    trainer_pid = json.loads((folder / "trainer.json").read_text())["pid"]
    wrapper_pid = json.loads((folder / "proc.json").read_text())["pid"]
    os.kill(wrapper_pid, signal.SIGKILL)  # e.g. the OOM killer
    state = _wait(backend, "t", "lost")
    assert state.reason == "trial process gone without an exit code"
    os.kill(trainer_pid, 0)  # the orphaned trainer still runs...
    _launch(backend, "t")  # ...until the relaunch kills it
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            os.kill(trainer_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the stale trainer survived the relaunch")
    backend.cancel("t")
    _wait(backend, "t", "exited")


def test_a_trainer_command_that_cannot_start_says_why(tmp_path: Path) -> None:
    # e.g. `trainer.command: [pyhton, -m, trainer]`: an exit code and the cause, not "gone"
    backend = LocalBackend(
        "sw",
        tmp_path / "local",
        ["no-such-trainer-binary", "-m", "trainer"],
        store_root=FileStore(tmp_path / "store").root,
        gpus=[],
        cancel_grace_s=1,
    )
    _launch(backend, "t1")
    state = _wait(backend, "t1", "exited")
    assert state.exit_code == 127 and "no-such-trainer-binary" in (state.reason or "")
    log = (tmp_path / "store" / "sw" / "trials" / "t1" / "trainer.log").read_text()
    assert "cannot start the trainer" in log and "no-such-trainer-binary" in log
