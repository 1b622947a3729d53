"""The loop's reads of the device (trainer.train): losses checked every SYNC_EVERY steps, step
times and the seconds-budget stop (the host clock, and the deferred CUDA logic with a fake device
clock), exact checkpoints while steps are unread. CPU, real torch, a tiny network."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest
import torch

from tests.trainer.helpers import TINY, write_trial
from trainer.contract import FILE_RESULT, DataSource, ExitCode, TrialResult
from trainer.data import load
from trainer.hparams import parse_config
from trainer.run import run_trial
from trainer.schedule import Schedule
from trainer.steptime import CudaTimer
from trainer.store import FileStore
from trainer.train import SYNC_EVERY, Device, NonFiniteLossError, Progress, Trainer

CPU = Device(torch.device("cpu"), None, channels_last=False, compile=False)
STEPS_PER_EPOCH = 40  # 320 images, batch 8: longer than SYNC_EVERY, so the window shows


def make(unit: str = "epochs", budget: float = 1.0) -> Trainer:
    cfg = parse_config({**TINY, "batch_size": 8})
    data = load("synthetic", DataSource(subset=320, val_size=50))
    schedule = Schedule.create(unit, cfg.learning_rate, budget, STEPS_PER_EPOCH)  # type: ignore[arg-type]
    trainer = Trainer(cfg, data, schedule, CPU, seed=0)
    assert trainer.steps_per_epoch == STEPS_PER_EPOCH
    return trainer


def record_flushes(trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The step count at each flush (each read of the device)."""
    steps: list[int] = []
    real = trainer.flush

    def flush() -> None:
        steps.append(trainer.progress.step)
        real()

    monkeypatch.setattr(trainer, "flush", flush)
    return steps


def record_losses(trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every step's loss, read at once (what the loop did before: a sync per step on CUDA)."""
    losses: list[float] = []
    real = trainer.step

    def step(*args: Any) -> torch.Tensor:
        loss = real(*args)
        losses.append(float(loss))
        return loss

    monkeypatch.setattr(trainer, "step", step)
    return losses


def running(values: list[float]) -> float:
    total = 0.0
    for v in values:  # in order, as the loop adds them (not math.fsum)
        total += v
    return total


def test_an_epochs_budget_runs_its_steps_reading_the_device_every_n_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trainer = make("epochs", 1.5)
    flushes = record_flushes(trainer, monkeypatch)
    losses = record_losses(trainer, monkeypatch)
    epochs: list[tuple[int, float, int]] = []

    def on_epoch_end(p: Progress, lr: float) -> None:
        epochs.append((p.step, p.epoch_loss_sum, p.epoch_loss_n))

    p = trainer.train(on_epoch_end=on_epoch_end)
    assert p.step == 60 and p.images == 60 * 8 and len(losses) == 60
    # every SYNC_EVERY steps, and at each epoch's end (step 40; the budget ends at 60)
    assert SYNC_EVERY == 16 and flushes == [16, 32, 40, 56, 60]
    # the deferred read loses nothing: the epoch sums are the per-step ones, bit for bit
    assert epochs == [(40, running(losses[:40]), 40), (60, running(losses[40:]), 20)]


def inject(trainer: Trainer, monkeypatch: pytest.MonkeyPatch, at: int, value: float) -> None:
    """From step `at` on, the step's loss is `value` (the step itself still runs)."""
    real = trainer.step
    calls = [0]

    def step(*args: Any) -> torch.Tensor:
        loss = real(*args)
        calls[0] += 1
        return torch.full_like(loss, value) if calls[0] >= at else loss

    monkeypatch.setattr(trainer, "step", step)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_the_loop_at_most_n_steps_late_naming_its_step(
    monkeypatch: pytest.MonkeyPatch, value: float
) -> None:
    trainer = make("epochs", 1.0)
    inject(trainer, monkeypatch, at=5, value=value)
    with pytest.raises(NonFiniteLossError, match=rf"training loss is {value} at step 5 \(lr "):
        trainer.train()
    assert 5 <= trainer.progress.step <= 5 + SYNC_EVERY - 1


def test_a_nan_loss_gives_a_failed_result_naming_nan(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "store")
    real = Trainer.step
    calls = [0]

    def step(self: Trainer, *args: Any) -> torch.Tensor:
        calls[0] += 1
        loss = real(self, *args)
        return torch.full_like(loss, float("nan")) if calls[0] >= 3 else loss

    monkeypatch.setattr(Trainer, "step", step)
    url = write_trial(store, data={"subset": 640, "val_size": 50}, config={"batch_size": 16})
    assert run_trial(url) == ExitCode.OK
    r = TrialResult.model_validate_json(store.get(f"s1/trials/t1/{FILE_RESULT}"))
    assert r.status == "failed" and r.loss is None
    assert r.error is not None and "training loss is nan at step 3" in r.error
    assert r.info.steps is not None and 3 <= r.info.steps <= 3 + SYNC_EVERY - 1


def test_a_seconds_budget_on_the_host_clock_stops_at_the_first_step_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    budget = 0.6
    trainer = make("seconds", budget)
    timer = trainer.timer
    assert timer.exact
    times: list[float] = []
    real = timer.collect

    def collect() -> list[float]:
        got = real()
        times.extend(got)
        return got

    monkeypatch.setattr(timer, "collect", collect)
    flushes = record_flushes(trainer, monkeypatch)
    p = trainer.train()
    assert len(times) == p.step and p.seconds == running(times)
    assert running(times[:-1]) < budget <= p.seconds  # within one step of the limit
    assert p.seconds < budget + p.last_step_seconds and p.last_step_seconds == times[-1]
    # step times are read every step, losses still only every SYNC_EVERY steps
    assert len(flushes) <= p.step // SYNC_EVERY + p.step // STEPS_PER_EPOCH + 2


class FakeDeviceTimer:
    """A device clock read late, as CUDA events are: step times (drawn here, not measured) are
    known only at ``collect``, so the loop must decide when to read them."""

    exact = False

    def __init__(self, times: list[float]) -> None:
        self.times = iter(times)
        self.issued: list[float] = []
        self.unread: list[float] = []
        self.collects = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        dt = next(self.times)
        self.issued.append(dt)
        self.unread.append(dt)

    def collect(self) -> list[float]:
        self.collects += int(bool(self.unread))
        got, self.unread = self.unread, []
        return got


def test_a_seconds_budget_read_late_still_stops_at_the_first_step_past_it() -> None:
    budget = 1.0
    rng = random.Random(0)
    times = [rng.uniform(0.01, 0.019) for _ in range(1000)]  # under 2x spread (SAFETY)
    trainer = make("seconds", budget)
    timer = FakeDeviceTimer(times)
    trainer.timer = timer
    p = trainer.train()
    issued = timer.issued
    assert len(issued) == p.step and p.seconds == running(issued)
    assert running(issued[:-1]) < budget <= p.seconds  # exact: not one step more
    # the device was read far less than once per step: full windows, then a shrinking tail
    assert timer.collects < p.step / 3
    assert p.step > 50


def test_a_checkpoint_with_unread_steps_resumes_bit_identically() -> None:
    whole = make("epochs", 1.0)
    sums: list[float] = []
    whole.train(on_epoch_end=lambda p, lr: sums.append(p.epoch_loss_sum))

    class Killed(BaseException):
        pass

    saved: dict[str, Any] = {}
    cut = make("epochs", 1.0)

    def on_step(p: Progress) -> None:
        if p.step == 7:  # mid-window: 7 losses not read yet
            saved.update(copy.deepcopy(cut.state_dict()))
            raise Killed

    with pytest.raises(Killed):
        cut.train(on_step=on_step)
    assert saved["progress"]["epoch_loss_n"] == 7 and saved["progress"]["epoch_loss_sum"] > 0
    resumed = make("epochs", 1.0)
    resumed.load_state_dict(saved)
    resumed_sums: list[float] = []
    p = resumed.train(on_epoch_end=lambda p, lr: resumed_sums.append(p.epoch_loss_sum))
    assert p.step == whole.progress.step == STEPS_PER_EPOCH
    assert resumed_sums == sums
    pairs = zip(whole.model.state_dict().values(), resumed.model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


class FakeEvent:
    """Stands in for torch.cuda.Event: each record() advances a clock by 1.5 ms."""

    clock = 0.0

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at = math.nan
        self.waited = False

    def record(self) -> None:
        FakeEvent.clock += 1.5
        self.at = FakeEvent.clock

    def synchronize(self) -> None:
        self.waited = True

    def elapsed_time(self, end: FakeEvent) -> float:
        return end.at - self.at  # milliseconds, as CUDA's


def test_the_cuda_timer_reads_its_event_pairs_in_order_and_reuses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    timer = CudaTimer()
    assert not timer.exact and timer.collect() == []
    for _ in range(3):
        timer.start()
        timer.stop()
    assert timer.collect() == pytest.approx([0.0015] * 3)  # seconds
    pool = list(timer._events)
    assert pool[-1][1].waited  # type: ignore[attr-defined]  # one wait, for the last event
    timer.start()
    timer.stop()
    assert timer.collect() == pytest.approx([0.0015]) and timer._events == pool
