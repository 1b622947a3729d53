"""Whole trials in-process on a file store: results, determinism, resume, failure semantics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.helpers import write_trial
from trainer import checkpoint
from trainer.contract import (
    FILE_CHECKPOINT,
    FILE_METRICS,
    FILE_RESULT,
    ExitCode,
    MetricsLine,
    TrialResult,
)
from trainer.model import Network
from trainer.run import run_trial
from trainer.store import FileStore, Store

PREFIX = "s1/trials"
TIMING = ("seconds", "images_per_second")


def result(store: Store, trial: str = "t1") -> TrialResult:
    return TrialResult.model_validate_json(store.get(f"{PREFIX}/{trial}/{FILE_RESULT}"))


def metrics(store: Store, trial: str = "t1") -> list[dict[str, Any]]:
    lines = store.get(f"{PREFIX}/{trial}/{FILE_METRICS}").decode().splitlines()
    return [MetricsLine.model_validate_json(line).model_dump() for line in lines]


def untimed(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in lines]


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def test_an_epochs_trial_writes_every_output_and_is_deterministic(store: FileStore) -> None:
    assert run_trial(write_trial(store, "t1")) == ExitCode.OK
    assert run_trial(write_trial(store, "t2")) == ExitCode.OK
    r1, r2 = result(store, "t1"), result(store, "t2")
    assert r1.status == "ok" and r1.loss is not None and 0 <= r1.loss <= 1
    assert r1.info.steps == 2 * (192 // 32) and r1.info.epochs == pytest.approx(2.0)
    assert r1.info.test_error is not None and r1.info.params == r2.info.params
    assert r1.started_at is not None and r1.finished_at is not None
    assert r1.loss == r2.loss and r1.info.test_error == r2.info.test_error
    m1 = metrics(store, "t1")
    assert [m["epoch"] for m in m1] == [1.0, 2.0]
    assert untimed(m1) == untimed(metrics(store, "t2"))
    assert m1[-1]["val_error"] == r1.loss
    assert store.exists(f"{PREFIX}/t1/{FILE_CHECKPOINT}")


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing after it runs (not an Exception)."""


def test_a_resumed_trial_finishes_the_same_budget_bit_identically(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    over: dict[str, Any] = {"budget": 1.5, "config": {"batch_size": 16}}
    assert run_trial(write_trial(store, "whole", **over)) == ExitCode.OK
    url = write_trial(store, "cut", checkpoint_every_s=1e-9, **over)  # a checkpoint every step
    saves = []
    real_save = checkpoint.save

    def save_then_die(s: Store, key: str, state: dict[str, Any]) -> None:
        real_save(s, key, state)
        saves.append(state["trainer"]["progress"]["step"])
        if len(saves) == 8:  # mid second epoch (12 steps per epoch)
            raise Killed

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(Killed):
        run_trial(url)
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert not store.exists(f"{PREFIX}/cut/{FILE_RESULT}")
    assert run_trial(url) == ExitCode.OK
    whole, cut = result(store, "whole"), result(store, "cut")
    assert cut.info.resumed == 1 and whole.info.resumed == 0
    assert cut.info.steps == whole.info.steps == 18
    assert cut.loss == whole.loss and cut.info.test_error == whole.info.test_error
    assert untimed(metrics(store, "cut")) == untimed(metrics(store, "whole"))
    # a third start finds the result and does nothing
    assert run_trial(url) == ExitCode.OK and result(store, "cut") == cut


def test_a_seconds_budget_stops_within_one_step_of_the_limit(store: FileStore) -> None:
    budget = 1.0
    url = write_trial(store, budget=budget, budget_unit="seconds", config={"batch_size": 16})
    assert run_trial(url) == ExitCode.OK
    info = result(store).info
    assert info.train_seconds is not None
    last = info.model_extra["last_step_seconds"]  # type: ignore[index]
    assert budget <= info.train_seconds < budget + last
    m = metrics(store)
    assert m[-1]["seconds"] == info.train_seconds and m[-1]["step"] == info.steps
    assert m[-1]["lr"] < m[0]["lr"] or len(m) == 1  # SGDR-time decays within the one cycle


def test_a_diverging_config_gives_a_failed_result(store: FileStore) -> None:
    assert run_trial(write_trial(store, config={"learning_rate": 1e4})) == ExitCode.OK
    r = result(store)
    assert r.status == "failed" and r.loss is None
    assert r.error is not None and "nan" in r.error.lower()


def test_out_of_memory_gives_a_failed_result(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forward(self: Network, x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Network, "forward", forward)
    assert run_trial(write_trial(store)) == ExitCode.OK
    r = result(store)
    assert r.status == "failed" and r.error is not None and "out of memory" in r.error


def test_too_many_parameters_gives_a_failed_result_without_training(store: FileStore) -> None:
    assert run_trial(write_trial(store, max_params=1000)) == ExitCode.OK
    r = result(store)
    assert r.status == "failed" and "max_params 1000" in (r.error or "")
    assert r.info.params is not None and r.info.params > 1000 and not r.info.steps


def test_an_existing_result_exits_at_once(store: FileStore) -> None:
    url = write_trial(store)
    done = TrialResult(trial_id="t1", status="ok", loss=0.5)
    store.put(f"{PREFIX}/t1/{FILE_RESULT}", done.model_dump_json().encode())
    assert run_trial(url) == ExitCode.OK
    assert result(store) == done and not store.exists(f"{PREFIX}/t1/{FILE_METRICS}")


@pytest.mark.parametrize(
    ("over", "named"),
    [
        ({"config": {"nr_blocks": 3}}, "nr_blocks"),
        ({"config": {"death_rate": 2.0}}, "death_rate"),
        ({"budget": -1}, "budget"),
        ({"trial_id": "Bad_Name"}, "trial_id"),
    ],
)
def test_an_invalid_trial_exits_2_naming_the_field(
    store: FileStore, capsys: pytest.CaptureFixture[str], over: dict[str, Any], named: str
) -> None:
    url = write_trial(store, **over)
    assert run_trial(url) == ExitCode.BAD_TRIAL
    assert named in capsys.readouterr().err
    assert not store.list("s1") or all(not k.endswith(FILE_RESULT) for k in store.list("s1"))


def test_trial_json_that_is_not_json_exits_2(store: FileStore) -> None:
    store.put(f"{PREFIX}/t1/trial.json", b"{not json")
    assert run_trial(store.url(f"{PREFIX}/t1/trial.json")) == ExitCode.BAD_TRIAL


def test_missing_data_exits_75_without_a_result(store: FileStore, tmp_path: Path) -> None:
    url = write_trial(store, dataset="cifar10", data={"location": str(tmp_path / "nowhere")})
    assert run_trial(url) == ExitCode.INFRA
    assert not store.exists(f"{PREFIX}/t1/{FILE_RESULT}")


def test_an_unreachable_store_exits_75(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.servers import free_port

    monkeypatch.setenv("KUBOHB_STORE_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("KUBOHB_STORE_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("KUBOHB_STORE_OUTAGE_TOLERANCE_S", "0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    assert run_trial("s3://bucket/root/s1/trials/t1/trial.json") == ExitCode.INFRA
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["event"] == "trial_unreadable" and "127.0.0.1" in event["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_on_a_node_without_it_exits_75(store: FileStore) -> None:
    assert run_trial(write_trial(store, device="cuda")) == ExitCode.INFRA
    assert not store.exists(f"{PREFIX}/t1/{FILE_RESULT}")


def test_the_mixed_precision_channels_last_path_trains(store: FileStore) -> None:
    """The GPU code path (autocast bf16, channels-last model and inputs) exercised on the CPU."""
    from tests.trainer.helpers import TINY
    from trainer.contract import DataSource
    from trainer.data import load
    from trainer.hparams import parse_config
    from trainer.schedule import Schedule
    from trainer.train import Device, Trainer

    cfg = parse_config(TINY)
    data = load("synthetic", DataSource(subset=64, val_size=50))
    device = Device(torch.device("cpu"), torch.bfloat16, channels_last=True, compile=False)
    trainer = Trainer(cfg, data, Schedule.create("epochs", 0.05, 1.0, 2), device, seed=0)
    p = trainer.train()
    assert p.step == 2 and p.epoch_loss_n == 0 and p.images == 64
    assert 0.0 <= trainer.error("val") <= 1.0
    weight = trainer.model.stem[0].weight
    assert isinstance(weight, torch.Tensor)
    assert weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dataset", ["cifar10", "fashion_mnist"])
def test_trials_on_the_real_on_disk_formats(store: FileStore, tmp_path: Path, dataset: str) -> None:
    from tests.trainer.helpers import write_cifar10

    if dataset == "cifar10":
        folder = write_cifar10(tmp_path / "cifar", per_batch=20, test=20)
        data = {"location": str(folder), "subset": 64}  # 90 training images, 10 validation
    else:
        debian = Path("/usr/share/datasets/fashion-mnist")
        if not debian.is_dir():
            pytest.skip("Debian package dataset-fashion-mnist is not installed (make install)")
        data = {"location": str(debian), "subset": 64, "val_size": 100}
    url = write_trial(store, dataset=dataset, data=data, budget=1, config={"batch_size": 16})
    assert run_trial(url) == ExitCode.OK
    r = result(store)
    assert r.status == "ok" and r.loss is not None and r.info.steps == 4


def test_an_infra_error_or_a_crash_leaves_the_attempts_log_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Kubernetes the pod and its output can be gone before anyone looks: the events of an
    attempt that ends without a result are in the trial's trainer.log too."""
    store = FileStore(tmp_path / "store")
    missing = write_trial(
        store, "t-missing", dataset="fashion_mnist", data={"location": str(tmp_path / "none")}
    )
    assert run_trial(missing) == ExitCode.INFRA
    text = store.get("s1/trials/t-missing/trainer.log").decode()
    assert '"event": "infra_error"' in text and "DataMissingError" in text

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("a bug in the data loader")

    monkeypatch.setattr("trainer.run.load", broken)
    crashing = write_trial(store, "t-crash")
    with pytest.raises(RuntimeError, match="a bug in the data loader"):
        run_trial(crashing)  # exit 1 with the traceback, as before
    text = store.get("s1/trials/t-crash/trainer.log").decode()
    assert '"event": "crashed"' in text and "Traceback (most recent call last)" in text
