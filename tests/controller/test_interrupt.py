"""Ctrl-C on `kubohb run` (SIGINT to the real CLI process, local backend): by default the trials
keep running and the next run adopts them; with --cancel-running they are cancelled, saved as
CANCELLED, and the next run relaunches them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweeps import REPO, read_state, run_json, synthetic_sweep, write_sweep
from trainer.store import FileStore

pytestmark = pytest.mark.slow


def _start(sweep: Path, *flags: str, sleep: float) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBOHB_SYNTHETIC_SLEEP": str(sleep)}
    return subprocess.Popen(
        [sys.executable, "-m", "controller", "run", str(sweep), "--json", *flags],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_running(store: Path, n: int, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (store / "syn" / "state.json").exists():
            trials = read_state(store, "syn")["trials"]  # the snapshot and the journal after it
            running = {k: t["state"] for k, t in trials.items() if t["state"] == "RUNNING"}
            if len(running) >= n:
                return running
        time.sleep(0.1)
    raise AssertionError(f"{n} trials never ran")


def _alive(run_dir: Path, trial_id: str) -> bool:
    proc = json.loads((run_dir / "syn" / trial_id / "proc.json").read_text())
    try:
        os.kill(proc["pid"], 0)
    except ProcessLookupError:
        return False
    return not (run_dir / "syn" / trial_id / "exit.json").exists()


def _stops(run_dir: Path, trial_id: str, within_s: float) -> bool:
    end = time.monotonic() + within_s
    while _alive(run_dir, trial_id):
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def test_ctrl_c_cancels_with_cancel_running_and_the_next_run_resumes(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, synthetic_sweep(tmp_path, parallelism=2))
    proc = _start(sweep, "--cancel-running", sleep=30)
    running = _wait_running(tmp_path / "store", 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "running trials were cancelled" in err
    state = read_state(tmp_path / "store", "syn")
    assert (state["status"], state["stop_reason"]) == ("stopped", "interrupted")
    for trial_id in running:
        t = state["trials"][trial_id]
        assert (t["state"], t["cancels"]) == ("CANCELLED", 1)
        # the trainer was stopped: cancel signals its wrapper and does not wait, so the wrapper
        # may still be ending it (cancel_grace_s is 1 s) when the controller has exited
        assert _stops(tmp_path / "local", trial_id, within_s=15)
    assert not [t for t in state["trials"].values() if t["state"] == "FAILED"]
    code, _ = run_json(sweep)  # resumed: the cancelled trials are relaunched and finish
    assert code == 0
    final = read_state(tmp_path / "store", "syn")["trials"]
    assert {t["state"] for t in final.values()} == {"SUCCEEDED"}
    assert all(final[k]["attempts"] == 2 for k in running)
    results = [k for k in FileStore(tmp_path / "store").list("syn/trials") if "result" in k]
    assert len(results) == len(final) == 17


def test_ctrl_c_leaves_trials_running_by_default_and_the_next_run_adopts_them(
    tmp_path: Path,
) -> None:
    sweep = write_sweep(tmp_path, synthetic_sweep(tmp_path, parallelism=2))
    proc = _start(sweep, sleep=4)
    running = _wait_running(tmp_path / "store", 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "running trials go on" in err and "--cancel-running" in err
    assert all(_alive(tmp_path / "local", trial_id) for trial_id in running)
    code, _ = run_json(sweep)
    assert code == 0
    final = read_state(tmp_path / "store", "syn")["trials"]
    assert {t["state"] for t in final.values()} == {"SUCCEEDED"}
    assert all(final[k]["attempts"] == 1 for k in running)  # adopted, never run twice
