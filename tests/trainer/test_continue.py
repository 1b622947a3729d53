"""Promotions that continue a lower rung's training (``TrialSpec.continue_from``), on real torch
training: where the continued trial starts, what it trains, its schedule, and its fallbacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.trainer.helpers import write_trial
from trainer import checkpoint
from trainer.contract import (
    FILE_CHECKPOINT,
    FILE_LOG,
    FILE_RESULT,
    ExitCode,
    TrialResult,
    TrialSpec,
)
from trainer.run import run_trial
from trainer.schedule import Schedule, cosine_lr
from trainer.store import FileStore, Store
from trainer.train import Trainer

PREFIX = "s1/trials"
STEPS_PER_EPOCH = 192 // 32
LOWER, UPPER = "it0-c0-r0", "it0-c0-r1"


def result(store: Store, trial: str) -> TrialResult:
    return TrialResult.model_validate_json(store.get(f"{PREFIX}/{trial}/{FILE_RESULT}"))


def events(store: Store, trial: str) -> list[dict[str, Any]]:
    text = store.get(f"{PREFIX}/{trial}/{FILE_LOG}").decode()
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@pytest.fixture
def steps_run(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number (1-based) of every optimiser step the trainer runs, in order."""
    seen: list[int] = []
    real_step = Trainer.step

    def counted(self: Trainer, *args: Any) -> Any:
        seen.append(self.progress.step + 1)
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "step", counted)
    return seen


def continued(store: Store, trial: str = UPPER, budget: float = 3, **over: Any) -> str:
    return write_trial(
        store, trial, budget=budget, continue_from={"trial_id": LOWER, "budget": 1}, **over
    )


def test_a_promotion_starts_at_the_lower_rungs_last_step_plus_one(
    store: FileStore, steps_run: list[int]
) -> None:
    assert run_trial(write_trial(store, LOWER, budget=1)) == ExitCode.OK
    lower = result(store, LOWER)
    assert lower.info.steps == STEPS_PER_EPOCH == len(steps_run)
    steps_run.clear()
    assert run_trial(continued(store)) == ExitCode.OK
    upper = result(store, UPPER)
    # it trains the increment only: steps 7..18 of the 3-epoch budget
    assert steps_run == list(range(STEPS_PER_EPOCH + 1, 3 * STEPS_PER_EPOCH + 1))
    assert upper.status == "ok" and upper.info.steps == 3 * STEPS_PER_EPOCH
    assert upper.info.continued_from == LOWER and upper.info.start_step == STEPS_PER_EPOCH
    assert upper.info.start_seconds == lower.info.train_seconds
    assert upper.info.epochs == pytest.approx(3.0)
    started = [e for e in events(store, UPPER) if e["event"] == "continued"]
    assert len(started) == 1 and started[0]["step"] == STEPS_PER_EPOCH
    # the metrics file is the increment's: its epochs 2 and 3
    lines = store.get(f"{PREFIX}/{UPPER}/metrics.jsonl").decode().splitlines()
    assert [json.loads(m)["step"] for m in lines] == [12, 18]
    # the schedule continued is the 3-epoch cosine from step 6 on
    first_lr = cosine_lr(0.05, STEPS_PER_EPOCH / (3 * STEPS_PER_EPOCH))
    schedule = Schedule.model_validate(started[0]["schedule"])
    assert schedule.lr(STEPS_PER_EPOCH, 0.0) == pytest.approx(first_lr)
    assert schedule.total_steps == 3 * STEPS_PER_EPOCH


def test_a_continued_trial_killed_mid_increment_resumes_as_the_same_continuation(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_trial(write_trial(store, LOWER, budget=1)) == ExitCode.OK
    assert run_trial(continued(store, "whole")) == ExitCode.OK
    url = continued(store, "cut", checkpoint_every_s=1e-9)  # a checkpoint every step
    real_save = checkpoint.save
    saves: list[int] = []

    class Killed(BaseException):
        pass

    def save_then_die(s: Store, key: str, state: dict[str, Any]) -> None:
        real_save(s, key, state)
        saves.append(state["trainer"]["progress"]["step"])
        if len(saves) == 4:
            raise Killed

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(Killed):
        run_trial(url)
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert saves[0] == STEPS_PER_EPOCH + 1  # its first checkpoint is after its first step
    assert run_trial(url) == ExitCode.OK
    whole, cut = result(store, "whole"), result(store, "cut")
    assert cut.info.resumed == 1 and cut.info.continued_from == LOWER
    assert cut.info.start_step == whole.info.start_step == STEPS_PER_EPOCH
    assert cut.loss == whole.loss and cut.info.test_error == whole.info.test_error


@pytest.mark.parametrize(
    ("lower_over", "why"),
    [
        (None, "no checkpoint"),
        ({"seed": 4}, "another config"),  # the lower trial ran another seed: not this config's
    ],
)
def test_without_a_usable_lower_checkpoint_it_trains_from_scratch(
    store: FileStore, steps_run: list[int], lower_over: dict[str, Any] | None, why: str
) -> None:
    if lower_over is not None:
        assert run_trial(write_trial(store, LOWER, budget=1, **lower_over)) == ExitCode.OK
    assert run_trial(write_trial(store, "fresh", budget=3)) == ExitCode.OK
    steps_run.clear()
    assert run_trial(continued(store)) == ExitCode.OK
    upper, fresh = result(store, UPPER), result(store, "fresh")
    assert steps_run[0] == 1 and upper.info.steps == 3 * STEPS_PER_EPOCH
    assert upper.info.continued_from is None and upper.info.start_step is None
    assert upper.loss == fresh.loss  # exactly the paper's protocol: a fresh run of the budget
    unavailable = [e for e in events(store, UPPER) if e["event"] == "continue_unavailable"]
    assert len(unavailable) == 1 and why in unavailable[0]["reason"]


def test_a_lower_checkpoint_that_is_not_final_is_not_continued(store: FileStore) -> None:
    url = write_trial(store, LOWER, budget=1, checkpoint_every_s=1e-9)
    real_save = checkpoint.save

    class Killed(BaseException):
        pass

    def die_at_step_two(s: Store, key: str, state: dict[str, Any]) -> None:
        real_save(s, key, state)
        if state["trainer"]["progress"]["step"] == 2:
            raise Killed

    with pytest.MonkeyPatch.context() as m:
        m.setattr(checkpoint, "save", die_at_step_two)
        with pytest.raises(Killed):
            run_trial(url)
    assert store.exists(f"{PREFIX}/{LOWER}/{FILE_CHECKPOINT}")
    assert run_trial(continued(store)) == ExitCode.OK
    assert result(store, UPPER).info.continued_from is None
    reasons = [e["reason"] for e in events(store, UPPER) if e["event"] == "continue_unavailable"]
    assert reasons and "not final" in reasons[0]


def test_a_seconds_promotion_continues_with_a_new_sgdr_cycle_over_the_rest(
    store: FileStore,
) -> None:
    over: dict[str, Any] = {"budget_unit": "seconds", "config": {"batch_size": 16}}
    assert run_trial(write_trial(store, LOWER, budget=0.4, **over)) == ExitCode.OK
    url = write_trial(
        store, UPPER, budget=1.2, continue_from={"trial_id": LOWER, "budget": 0.4}, **over
    )
    assert run_trial(url) == ExitCode.OK
    lower, upper = result(store, LOWER).info, result(store, UPPER).info
    assert lower.train_seconds is not None and upper.train_seconds is not None
    assert upper.start_seconds == lower.train_seconds and upper.train_seconds >= 1.2
    [event] = [e for e in events(store, UPPER) if e["event"] == "continued"]
    schedule = Schedule.model_validate(event["schedule"])
    assert schedule.start_seconds == lower.train_seconds
    assert schedule.t0 == pytest.approx(1.2 - lower.train_seconds)
    assert schedule.lr(0, lower.train_seconds) == pytest.approx(0.05)  # a warm restart


def test_the_authors_400_to_1200_s_continuation_is_the_fresh_runs_second_cycle() -> None:
    fresh = Schedule.create("seconds", 0.1, 1200.0, 10)
    lower = Schedule.create("seconds", 0.1, 400.0, 10)
    cont = lower.continued(1200.0, 10, 400.0)
    for t in (400.0, 500.0, 800.0, 1199.0):
        assert cont.lr(0, t) == pytest.approx(fresh.lr(0, t))
    epochs = Schedule.create("epochs", 0.1, 3.0, 10).continued(9.0, 10, 0.0)
    assert epochs.total_steps == 90 and epochs.lr(30, 0.0) == pytest.approx(cosine_lr(0.1, 1 / 3))
    with pytest.raises(ValueError, match="must exceed"):
        epochs.continued(9.0, 10, 0.0)


def test_a_continue_from_that_is_not_below_the_budget_is_refused_naming_the_field(
    store: FileStore,
) -> None:
    base: dict[str, Any] = {
        "sweep": "s1",
        "trial_id": UPPER,
        "config": {},
        "budget": 3,
        "store_root": store.root,
    }
    with pytest.raises(ValidationError, match=r"continue_from\.budget"):
        TrialSpec.model_validate({**base, "continue_from": {"trial_id": LOWER, "budget": 3}})
    with pytest.raises(ValidationError, match=r"continue_from\.trial_id"):
        TrialSpec.model_validate({**base, "continue_from": {"trial_id": "Bad_Id", "budget": 1}})
    url = write_trial(store, UPPER, budget=3, continue_from={"trial_id": LOWER, "budget": 5})
    assert run_trial(url) == ExitCode.BAD_TRIAL
