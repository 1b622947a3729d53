"""SIGTERM / SIGINT in-process: the trainer stops at the next step boundary with a checkpoint,
exits CANCELLED (143), and the next attempt finishes the budget as if it had never stopped."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from torch import Tensor

from tests.trainer.helpers import write_trial
from trainer import checkpoint
from trainer import run as run_module
from trainer.contract import FILE_CHECKPOINT, FILE_LOG, FILE_METRICS, FILE_RESULT, ExitCode
from trainer.run import run_trial
from trainer.store import FileStore, Store
from trainer.train import Trainer

PREFIX = "s1/trials"
TIMING = ("seconds", "images_per_second")
OVER: dict[str, Any] = {"budget": 1.5, "config": {"batch_size": 16}}  # 18 steps, 12 an epoch


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def events(err: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [e for e in lines if e["event"] == name]


def ckpt_step(store: Store, trial: str) -> int:
    state = checkpoint.load(store, f"{PREFIX}/{trial}/{FILE_CHECKPOINT}")
    assert state is not None
    return int(state["trainer"]["progress"]["step"])


def result(store: Store, trial: str) -> dict[str, Any]:
    return json.loads(store.get(f"{PREFIX}/{trial}/{FILE_RESULT}"))


def untimed_metrics(store: Store, trial: str) -> list[dict[str, Any]]:
    lines = store.get(f"{PREFIX}/{trial}/{FILE_METRICS}").decode().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


def signal_during_step(monkeypatch: pytest.MonkeyPatch, at_step: int, sig: int) -> None:
    """Send ``sig`` to this process while the optimiser step after ``at_step`` runs (the handler
    runs there, in the main thread, between two of its bytecodes)."""
    real_step = Trainer.step

    def step(self: Trainer, x: Tensor, y_a: Tensor, y_b: Tensor, lam: float) -> Tensor:
        if self.progress.step == at_step:
            os.kill(os.getpid(), sig)
        return real_step(self, x, y_a, y_b, lam)

    monkeypatch.setattr(Trainer, "step", step)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_checkpoints_at_the_step_boundary_and_the_retry_is_bit_identical(
    store: FileStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sig: signal.Signals,
) -> None:
    assert run_trial(write_trial(store, "whole", **OVER)) == ExitCode.OK
    url = write_trial(store, "cut", **OVER)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    capsys.readouterr()
    with monkeypatch.context() as m:
        signal_during_step(m, at_step=7, sig=sig)  # during step 8, of the first epoch's 12
        assert run_trial(url) == ExitCode.CANCELLED
    err = capsys.readouterr().err
    # the handlers are the process's own again
    assert {s: signal.getsignal(s) for s in before} == before
    (asked,) = events(err, "stop_requested")
    assert (asked["signal"], asked["signalled_at_step"], asked["step"]) == (sig.name, 7, 8)
    assert ckpt_step(store, "cut") == 8  # the step it finished after the signal, no further
    assert not store.exists(f"{PREFIX}/cut/{FILE_RESULT}")
    assert b'"event": "stop_requested"' in store.get(f"{PREFIX}/cut/{FILE_LOG}")
    (stopped,) = events(err, "stopped")
    assert stopped["exit_code"] == 143 and stopped["signals"] == 1

    assert run_trial(url) == ExitCode.OK
    (resumed,) = events(capsys.readouterr().err, "resumed")
    assert resumed["step"] == 8
    whole, cut = result(store, "whole"), result(store, "cut")
    assert cut["info"]["resumed"] == 1 and cut["info"]["steps"] == whole["info"]["steps"] == 18
    assert cut["loss"] == whole["loss"] and cut["info"]["test_error"] == whole["info"]["test_error"]
    assert untimed_metrics(store, "cut") == untimed_metrics(store, "whole")
    # both attempts' events are in the trial's log
    log = store.get(f"{PREFIX}/cut/{FILE_LOG}").decode()
    assert log.index('"stop_requested"') < log.index('"resumed"')


def test_a_signal_in_the_last_step_ends_the_epoch_then_stops_before_the_test_evaluation(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_trial(write_trial(store, "whole", **OVER)) == ExitCode.OK
    url = write_trial(store, "cut", **OVER)
    with monkeypatch.context() as m:
        signal_during_step(m, at_step=17, sig=signal.SIGTERM)  # the budget's last step
        assert run_trial(url) == ExitCode.CANCELLED
    assert ckpt_step(store, "cut") == 18
    # the last (partial) epoch's metrics line, validated, is in: the retry only tests
    assert untimed_metrics(store, "cut") == untimed_metrics(store, "whole")
    capsys.readouterr()
    assert run_trial(url) == ExitCode.OK
    (started,) = events(capsys.readouterr().err, "training_started")
    assert started["step"] == 18
    whole, cut = result(store, "whole"), result(store, "cut")
    assert cut["loss"] == whole["loss"] and cut["info"]["test_error"] == whole["info"]["test_error"]


def test_a_seconds_budget_continues_from_the_checkpoint_on_the_next_attempt(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = 1.0
    url = write_trial(store, budget=budget, budget_unit="seconds", config={"batch_size": 16})
    with monkeypatch.context() as m:
        signal_during_step(m, at_step=10, sig=signal.SIGTERM)
        assert run_trial(url) == ExitCode.CANCELLED
    state = checkpoint.load(store, f"{PREFIX}/t1/{FILE_CHECKPOINT}")
    assert state is not None
    used = state["trainer"]["progress"]["seconds"]
    assert state["trainer"]["progress"]["step"] == 11 and 0 < used < budget
    capsys.readouterr()
    assert run_trial(url) == ExitCode.OK
    (resumed,) = events(capsys.readouterr().err, "resumed")
    assert resumed["step"] == 11 and resumed["seconds"] == round(used, 3)
    info = result(store, "t1")["info"]
    # the budget is the trial's, over both attempts: it stops within one step of it
    assert info["resumed"] == 1 and info["steps"] > 11
    assert budget <= info["train_seconds"] < budget + info["last_step_seconds"]


def test_a_signal_while_loading_exits_at_once_without_a_checkpoint(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def slow_load(*args: Any) -> Any:
        time.sleep(60)  # a data set download that the signal interrupts
        raise AssertionError("not interrupted")

    monkeypatch.setattr(run_module, "load", slow_load)
    url = write_trial(store)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    began = time.monotonic()
    timer.start()
    try:
        assert run_trial(url) == ExitCode.CANCELLED
    finally:
        timer.cancel()
    assert time.monotonic() - began < 10
    (stopped,) = events(capsys.readouterr().err, "stopped")
    assert stopped["signal"] == "SIGTERM" and stopped["signalled_at_step"] is None
    assert not store.exists(f"{PREFIX}/t1/{FILE_CHECKPOINT}")
    assert not store.exists(f"{PREFIX}/t1/{FILE_RESULT}")


def test_a_second_signal_during_the_checkpoint_upload_changes_nothing(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = write_trial(store, **OVER)
    real_save = checkpoint.save
    saved: list[int] = []

    def save_signalled(s: Store, key: str, state: dict[str, Any]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the kubelet, impatient, sends another
        real_save(s, key, state)
        saved.append(state["trainer"]["progress"]["step"])

    with monkeypatch.context() as m:
        signal_during_step(m, at_step=4, sig=signal.SIGTERM)
        m.setattr(checkpoint, "save", save_signalled)
        assert run_trial(url) == ExitCode.CANCELLED
    assert saved == [5] and ckpt_step(store, "t1") == 5
    (stopped,) = events(capsys.readouterr().err, "stopped")
    assert stopped["signals"] == 2 and stopped["signalled_at_step"] == 4
    assert run_trial(url) == ExitCode.OK
    assert result(store, "t1")["info"]["steps"] == 18


def test_a_signal_after_the_result_changes_nothing(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the final checkpoint is taken the result is moments away: it is written, exit 0."""
    real_save = checkpoint.save
    calls = []

    def save_then_signal(s: Store, key: str, state: dict[str, Any]) -> None:
        real_save(s, key, state)
        calls.append(1)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(checkpoint, "save", save_then_signal)
    url = write_trial(store, **OVER)
    assert run_trial(url) == ExitCode.OK
    assert calls == [1] and result(store, "t1")["status"] == "ok"
