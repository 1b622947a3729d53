"""Spot-safe trainer, with real processes: ``python -m trainer`` sent SIGTERM mid-training (as the
kubelet does before it kills a reclaimed pod) checkpoints and exits 143, and the next attempt
finishes bit-identically; the local backend's cancel gives it the grace to do so."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from controller.backends.base import Ending, ExitCode, Launch
from controller.backends.local.backend import LocalBackend
from tests.trainer.helpers import write_trial
from trainer import checkpoint
from trainer.contract import FILE_CHECKPOINT, FILE_METRICS, FILE_RESULT
from trainer.run import run_trial
from trainer.store import FileStore, Store

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "s1/trials"
TIMING = ("seconds", "images_per_second")
# 8 epochs of 12 steps: a few seconds of training on one CPU thread, long enough to signal into
OVER: dict[str, Any] = {"budget": 8, "config": {"batch_size": 16}}
STEPS = 8 * (192 // 16)


def wait_until_catching(pid: int, signum: int, timeout_s: float = 60.0) -> None:
    """Until the process has a handler for the signal (its SigCgt mask in /proc), however slow
    the interpreter's start is on this machine."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        if caught & (1 << (signum - 1)):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} has no handler for signal {signum} after {timeout_s} s")


def release_fifo(path: Path) -> None:
    """A reader blocked opening the FIFO gets an empty file; nothing if the reader is gone."""
    with contextlib.suppress(OSError):  # ENXIO: no reader has it open (the trainer left)
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def env() -> dict[str, str]:
    out = {**os.environ, "OMP_NUM_THREADS": "1"}
    out.pop("KUBOHB_TRIAL", None)
    return out


class Trainer:
    """``python -m trainer --trial URL``, its structured events read from stderr as they come."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trainer", "--trial", url],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        assert self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def wait_for(self, name: str, timeout: float = 120) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                e = self.events.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode} before {name}"
                continue
            self.seen.append(e)
            if e["event"] == name:
                return e
        raise AssertionError(f"no {name} event within {timeout} s")

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # the reader thread drains the pipe
        while not self.events.empty():
            self.seen.append(self.events.get())
        return code

    def event(self, name: str) -> dict[str, Any]:
        (e,) = [e for e in self.seen if e["event"] == name]
        return e


def untimed_metrics(store: Store, trial: str) -> list[dict[str, Any]]:
    lines = store.get(f"{PREFIX}/{trial}/{FILE_METRICS}").decode().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


def ckpt_step(store: Store, trial: str) -> int:
    state = checkpoint.load(store, f"{PREFIX}/{trial}/{FILE_CHECKPOINT}")
    assert state is not None
    return int(state["trainer"]["progress"]["step"])


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def test_sigterm_mid_training_checkpoints_exits_143_and_the_next_attempt_resumes_there(
    store: FileStore,
) -> None:
    assert run_trial(write_trial(store, "whole", **OVER)) == ExitCode.OK  # the uninterrupted run
    url = write_trial(store, "cut", **OVER)  # checkpoint_every_s 300: none but the stop's

    first = Trainer(url)
    first.wait_for("training_started")
    time.sleep(0.5)  # some steps
    first.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert first.finish(timeout=30) == 143  # ExitCode.CANCELLED
    assert time.monotonic() - sent < 5, "the stop took more than a few seconds"
    asked = first.event("stop_requested")
    at = asked["step"]
    # it stopped at the first step boundary after the signal: at most one step further
    assert 0 < at < STEPS and 0 <= at - asked["signalled_at_step"] <= 1
    assert asked["signal"] == "SIGTERM"
    assert ckpt_step(store, "cut") == at
    assert not store.exists(f"{PREFIX}/cut/{FILE_RESULT}")

    again = Trainer(url)  # the next attempt, on the same trial
    assert again.wait_for("resumed")["step"] == at
    assert again.wait_for("training_started")["step"] == at
    assert again.finish(timeout=300) == ExitCode.OK
    whole = json.loads(store.get(f"{PREFIX}/whole/{FILE_RESULT}"))
    cut = json.loads(store.get(f"{PREFIX}/cut/{FILE_RESULT}"))
    assert cut["status"] == "ok" and cut["info"]["resumed"] == 1
    assert cut["info"]["steps"] == whole["info"]["steps"] == STEPS
    assert cut["loss"] == whole["loss"]  # bit-identical on CPU
    assert cut["info"]["test_error"] == whole["info"]["test_error"]
    assert untimed_metrics(store, "cut") == untimed_metrics(store, "whole")


def test_a_local_cancel_gives_the_real_trainer_its_grace_to_checkpoint(
    tmp_path: Path, store: FileStore
) -> None:
    backend = LocalBackend(
        "s1",
        tmp_path / "local",
        ["python", "-m", "trainer"],
        store_root=store.root,
        gpus=[],
        env={"OMP_NUM_THREADS": "1"},
        cancel_grace_s=30,
    )
    url = write_trial(store, "t1", **OVER)
    backend.launch(Launch(sweep="s1", trial_id="t1", trial_url=url))
    log = tmp_path / "local" / "s1" / "t1" / "trainer.log"
    end = time.monotonic() + 120
    while not (log.exists() and '"training_started"' in log.read_text()):
        assert time.monotonic() < end, "the trainer never started training"
        assert backend.poll(["t1"])["t1"].phase == "running", backend.poll(["t1"])
        time.sleep(0.1)
    time.sleep(0.3)
    backend.cancel("t1")
    end = time.monotonic() + 60
    while (state := backend.poll(["t1"])["t1"]).phase != "exited":
        assert time.monotonic() < end, state
        time.sleep(0.1)
    assert (state.exit_code, state.ending) == (ExitCode.CANCELLED, Ending.CANCELLED)
    # SIGTERM first, then the grace: the trainer checkpointed where it stopped and said so
    text = log.read_text()
    assert '"stop_requested"' in text and '"stopped"' in text, text[-2000:]
    (asked,) = [json.loads(x) for x in text.splitlines() if '"stop_requested"' in x]
    assert 0 < ckpt_step(store, "t1") == asked["step"] < STEPS
    assert not store.exists(f"{PREFIX}/t1/{FILE_RESULT}")


def test_a_sigterm_during_start_up_exits_143_at_once(tmp_path: Path) -> None:
    """While the interpreter imports torch (a pod's PID 1 would drop a SIGTERM it has no handler
    for), or reads trial.json just after: the trainer leaves with 143, not killed by the signal
    (-15), and writes nothing. trial.json is a FIFO no one writes to until the signal is in, so
    the read blocks: the signal lands in start-up however fast torch's import is on this
    machine, and the test waits for the handler however slow the interpreter's start is."""
    folder = tmp_path / "store" / "none"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "trial.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "--trial", (folder / "trial.json").as_uri()],
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until_catching(proc.pid, signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        # The signal came between Python's check for pending signals and the blocking open():
        # the open does not return on it. Opening the FIFO's other end lets the open return
        # (as any real read returns, or times out); the pending handler then stops the trainer.
        release_fifo(folder / "trial.json")
        code = proc.wait(timeout=20)
    assert code == ExitCode.CANCELLED
    assert [p.name for p in (tmp_path / "store").rglob("*")] == ["none", "trial.json"]
