"""One trial, start to finish: read trial.json, train for the budget, write outputs to the store.

Exit codes (``trainer.contract.ExitCode``): OK (0) when result.json was written, ``ok`` or
``failed``, or already existed; BAD_TRIAL (2) when trial.json or its config is invalid; INFRA (75)
when the store is unreachable, the data set is missing or CUDA is asked for but absent (retriable:
no result is written, a restart resumes from the checkpoint); CANCELLED (143) when SIGTERM or
SIGINT stopped it (``StopRequest``: during training after a checkpoint at the step boundary where
the loop saw the signal, before it at once; retriable, no result). A config that cannot train
(NaN/inf loss, out of memory, more than ``max_params`` parameters, a network that cannot be built)
gives a ``failed`` result and exit 0. Any other exception is a bug: it propagates (exit 1,
traceback on stderr).
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any, NoReturn

import torch

from trainer import checkpoint
from trainer.contract import (
    FILE_CHECKPOINT,
    FILE_LOG,
    FILE_METRICS,
    ExitCode,
    MetricsLine,
    TrialInfo,
    TrialResult,
    TrialSpec,
    trial_prefix,
)
from trainer.data import DataMissingError, Splits, load
from trainer.hparams import TrainConfig, parse_config
from trainer.model import ModelError, describe
from trainer.results import has_own_result, publish
from trainer.schedule import Schedule
from trainer.stop import Stopped, StopRequest
from trainer.store import NotFound, Store, StoreError, open_store, open_url
from trainer.train import (
    Device,
    DeviceUnavailableError,
    NonFiniteLossError,
    Progress,
    Trainer,
    limit_cpu_threads,
    steps_per_epoch,
)

METRICS_EVERY_S = 10.0  # wall seconds between metrics.jsonl rewrites (and at every checkpoint)
# Per-epoch validation may cost at most about this share of the training compute: with a small
# `subset` and a large validation set, evaluate every k-th epoch (always after the last step).
EVAL_SHARE = 0.25


class EventLog:
    """Structured log: one JSON object per line on stderr, kept for trainer.log in the store."""

    def __init__(self) -> None:
        self.trial: str | None = None
        self.lines: list[str] = []

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        if self.trial:
            record["trial"] = self.trial
        record.update(fields)
        line = json.dumps(record, default=str)
        self.lines.append(line)
        print(line, file=sys.stderr, flush=True)


class ConfigCannotTrainError(RuntimeError):
    """The config is bad in a way BOHB should learn from: a ``failed`` result."""


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def run_trial(url: str) -> int:
    log = EventLog()
    stop = StopRequest()
    with stop.installed():
        try:
            return _run_trial(url, log, stop)
        except Stopped:
            log("stopped", exit_code=int(ExitCode.CANCELLED), **stop.describe())
            return ExitCode.CANCELLED


def _run_trial(url: str, log: EventLog, stop: StopRequest) -> int:
    try:
        # without an endpoint or region in hand, the S3 store takes KUBOHB_STORE_ENDPOINT/_REGION
        src, key = open_url(url)
        body = src.get(key)
    except StoreError as exc:
        log("trial_unreadable", url=url, error=str(exc))
        return ExitCode.INFRA
    try:
        raw = json.loads(body)
        spec = TrialSpec.model_validate(raw)
        cfg = parse_config(spec.config)
    except ValueError as exc:  # pydantic's ValidationError names every bad field
        log("trial_invalid", url=url, error=str(exc))
        return ExitCode.BAD_TRIAL
    log.trial = spec.trial_id
    endpoint, region = spec.store_endpoint_url, spec.store_region
    store: Store | None = None
    try:
        store = open_store(spec.store_root, endpoint_url=endpoint, region=region)
        if has_own_result(store, spec):
            log("result_exists", prefix=spec.prefix)
            return ExitCode.OK
        data = load(spec.dataset, spec.data, endpoint, region)
        log(
            "data_loaded",
            dataset=data.name,
            train=len(data.train_y),
            val=len(data.val_y),
            test=len(data.test_y),
        )
        TrialRun(spec, cfg, store, log, stop).run(data)
    except (StoreError, DataMissingError, DeviceUnavailableError) as exc:
        log("infra_error", kind=type(exc).__name__, error=str(exc))
        if store is not None:  # the pod and its output may be gone before anyone reads them
            put_log(store, f"{spec.prefix}/{FILE_LOG}", log)
        return ExitCode.INFRA
    except Exception as exc:  # a bug: exit 1 with the traceback, and keep it in the store too
        log("crashed", kind=type(exc).__name__, error=str(exc), traceback=traceback.format_exc())
        if store is not None:
            put_log(store, f"{spec.prefix}/{FILE_LOG}", log)
        raise
    return ExitCode.OK


def put_log(store: Store, key: str, log: EventLog) -> None:
    """Append an attempt's events to its trainer.log (best effort: the log is a convenience, a
    result, a stop or an error exit must not fail for it)."""
    try:
        try:
            previous = store.get(key).decode()
        except NotFound:
            previous = ""
        store.put(key, (previous + "\n".join(log.lines) + "\n").encode())
    except StoreError as exc:
        log("log_upload_failed", error=str(exc))


def _unusable(
    state: dict[str, Any] | None, fingerprint: dict[str, Any], budget: float
) -> str | None:
    """Why a lower rung's checkpoint cannot be continued (None: it can): it must be that of the
    same config, data and seed at ``budget``, and final (its training reached that budget)."""
    if state is None:
        return "no checkpoint (deleted, or never written)"
    theirs = dict(state.get("fingerprint") or {})
    theirs.pop("continue_from", None)  # the lower rung may itself have continued one
    ours = {**fingerprint, "budget": budget}
    ours.pop("continue_from", None)
    if theirs != ours:
        return "written for another config, data set, seed or budget"
    trainer = state["trainer"]
    schedule = Schedule.model_validate(trainer["schedule"])
    progress = trainer["progress"]
    if not schedule.done(int(progress["step"]), float(progress["seconds"])):
        return "not final: that trial's training had not reached its budget"
    return None


class TrialRun:
    """Training and output writing for one trial whose result does not exist yet."""

    def __init__(
        self,
        spec: TrialSpec,
        cfg: TrainConfig,
        store: Store,
        log: EventLog,
        stop: StopRequest | None = None,
    ) -> None:
        self.spec, self.cfg, self.store, self.log = spec, cfg, store, log
        self.stop = stop or StopRequest()
        self.metrics: list[dict[str, Any]] = []
        self._metrics_put = -1  # lines in the last metrics.jsonl written (-1: none yet)
        self.started = datetime.now(UTC)
        self.wall0 = time.monotonic()
        self.wall_before = 0.0  # wall seconds of earlier (interrupted) runs
        self.resumed = 0
        self.params: int | None = None
        self.trainer: Trainer | None = None
        self.device_name = "cpu"
        self.fingerprint = {
            "config": cfg.model_dump(),
            "budget": spec.budget,
            "budget_unit": spec.budget_unit,
            "dataset": spec.dataset,
            "seed": spec.seed,
            "subset": spec.data.subset,
            "val_size": spec.data.val_size,
            "continue_from": spec.continue_from and spec.continue_from.model_dump(),
        }
        # a promotion that continued a lower rung: {"trial_id", "step", "seconds"} it started from
        self.continued: dict[str, Any] | None = None

    def key(self, name: str) -> str:
        return f"{self.spec.prefix}/{name}"

    def run(self, data: Splits) -> None:
        # from here a signal only sets the flag: whatever is written next is written whole
        self.stop.loading = False
        try:
            self.trainer = self.stop.trainer = self._build(data)
            self._resume(self.trainer)
            if self.stop.requested:  # no step since the checkpoint: nothing to save
                raise Stopped
            self._train(self.trainer)
        except (NonFiniteLossError, ModelError, ConfigCannotTrainError) as exc:
            self._fail(str(exc))
        except Exception as exc:
            if not _is_oom(exc):
                raise
            self._fail(f"out of memory ({type(exc).__name__}): {str(exc)[:300]}")

    # ------------------------------------------------------------------ phases

    def _build(self, data: Splits) -> Trainer:
        spec, cfg = self.spec, self.cfg
        self.params = int(describe(cfg, data.channels, data.num_classes)["params"])
        if spec.max_params is not None and self.params > spec.max_params:
            raise ConfigCannotTrainError(
                f"the network has {self.params} parameters, more than max_params {spec.max_params}"
            )
        device = Device.choose(spec.device, spec.amp, spec.compile)
        self.device_name = device.describe()
        threads = limit_cpu_threads()
        schedule = Schedule.create(
            spec.budget_unit,
            cfg.learning_rate,
            spec.budget,
            steps_per_epoch(len(data.train_y), cfg.batch_size),
        )
        trainer = Trainer(cfg, data, schedule, device, spec.seed)
        self.log(
            "model_built",
            params=self.params,
            device=self.device_name,
            cpu_threads=threads,
            steps_per_epoch=trainer.steps_per_epoch,
            schedule=schedule.model_dump(),
        )
        return trainer

    def _resume(self, trainer: Trainer) -> None:
        """From this trial's own checkpoint (an earlier attempt's), else, for a promotion that
        continues a lower rung, from that trial's final checkpoint, else from scratch."""
        key = self.key(FILE_CHECKPOINT)
        state = checkpoint.load(self.store, key)
        if state is not None and state.get("fingerprint") != self.fingerprint:
            self.log("checkpoint_ignored", key=key, reason="written for another trial spec")
            state = None
        if state is None:
            if self.spec.continue_from is not None:
                self._continue(trainer)
            return
        trainer.load_state_dict(state["trainer"])
        self.metrics = list(state["metrics"])
        self.continued = state.get("continued")
        self.resumed = int(state["resumed"]) + 1
        self.started = datetime.fromisoformat(state["started_at"])
        self.wall_before = float(state["wall_seconds"])
        self.log(
            "resumed",
            key=key,
            step=trainer.progress.step,
            seconds=round(trainer.progress.seconds, 3),
            resumed=self.resumed,
        )

    def _continue(self, trainer: Trainer) -> None:
        """Start from the lower rung's final checkpoint; train only the increment
        (``Schedule.continued``). Without a usable one, train from scratch: the paper's protocol,
        at the full budget's cost (the controller reserved the increment only)."""
        lower = self.spec.continue_from
        assert lower is not None
        key = f"{trial_prefix(self.spec.sweep, lower.trial_id)}/{FILE_CHECKPOINT}"
        state = checkpoint.load(self.store, key)
        why = _unusable(state, self.fingerprint, lower.budget)
        if why is not None:
            self.log("continue_unavailable", key=key, reason=why)
            return
        assert state is not None
        trainer.load_state_dict(state["trainer"])
        p = trainer.progress
        trainer.schedule = trainer.schedule.continued(
            self.spec.budget, trainer.steps_per_epoch, p.seconds
        )
        p.eval_seconds = 0.0  # evaluation time is this trial's own
        self.continued = {"trial_id": lower.trial_id, "step": p.step, "seconds": p.seconds}
        self.log(
            "continued",
            key=key,
            step=p.step,
            seconds=round(p.seconds, 3),
            schedule=trainer.schedule.model_dump(),
        )

    def _train(self, trainer: Trainer) -> None:
        spec = self.spec
        last_ckpt = trainer.progress.seconds
        last_upload = time.monotonic()
        mark = {"images": trainer.progress.images, "seconds": trainer.progress.seconds}

        def on_step(p: Progress) -> None:
            nonlocal last_ckpt
            # at the budget's last step the loop ends the epoch (its metrics line) first
            if self.stop.requested and not trainer.schedule.done(p.step, p.seconds):
                self._stop(trainer)
            if p.seconds - last_ckpt >= spec.checkpoint_every_s:
                self._checkpoint(trainer)
                last_ckpt = p.seconds

        def on_epoch_end(p: Progress, lr: float) -> None:
            nonlocal last_upload
            dt = p.seconds - mark["seconds"]
            line = MetricsLine(
                epoch=round(trainer.epochs_done(), 6),
                step=p.step,
                train_loss=p.epoch_loss_sum / p.epoch_loss_n if p.epoch_loss_n else None,
                val_error=trainer.error("val") if self._evaluate_now(trainer) else None,
                lr=lr,
                seconds=p.seconds,
                images_per_second=(p.images - mark["images"]) / dt if dt > 0 else None,
            )
            mark.update(images=p.images, seconds=p.seconds)
            self.metrics.append(line.model_dump())
            if time.monotonic() - last_upload >= METRICS_EVERY_S:
                self._put_metrics()
                last_upload = time.monotonic()

        self.log("training_started", step=trainer.progress.step)
        p = trainer.train(on_epoch_end=on_epoch_end, on_step=on_step)
        if self.stop.requested:  # budget used: the next attempt only evaluates
            self._stop(trainer)
        last = self.metrics[-1] if self.metrics else None
        if last is not None and last["step"] == p.step and last["val_error"] is not None:
            val_error = float(last["val_error"])
        else:  # resumed after the last step: the final evaluation was not recorded
            val_error = trainer.error("val")
        test_error = trainer.error("test")
        self._checkpoint(trainer)
        info = self._info(trainer)
        info.update(
            val_accuracy=1 - val_error,
            test_error=test_error,
            test_accuracy=1 - test_error,
        )
        self._finish(
            TrialResult(trial_id=spec.trial_id, status="ok", loss=val_error, info=TrialInfo(**info))
        )

    def _evaluate_now(self, trainer: Trainer) -> bool:
        """Validate after this epoch? Every k-th epoch, k fixed by the data sizes (a forward pass
        costs about a third of a training step's work), so the choice is deterministic."""
        p = trainer.progress
        if trainer.schedule.done(p.step, p.seconds):
            return True
        per_epoch = trainer.steps_per_epoch * trainer.batch
        every = max(1, math.ceil(len(trainer.val_y) / (3 * EVAL_SHARE * per_epoch)))
        return (p.epoch + 1) % every == 0

    # ------------------------------------------------------------------ outputs

    def _wall_seconds(self) -> float:
        """Wall seconds of this trial, earlier (interrupted) runs included."""
        return self.wall_before + time.monotonic() - self.wall0

    def _info(self, trainer: Trainer | None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "params": self.params,
            "device": self.device_name,
            "resumed": self.resumed,
            "wall_seconds": self._wall_seconds(),
            "budget": self.spec.budget,
            "budget_unit": self.spec.budget_unit,
        }
        if self.continued is not None:
            info.update(
                continued_from=self.continued["trial_id"],
                start_step=self.continued["step"],
                start_seconds=self.continued["seconds"],
            )
        if trainer is not None:
            p = trainer.progress
            info.update(
                epochs=trainer.epochs_done(),
                steps=p.step,
                train_seconds=p.seconds,
                images_per_second=p.images / p.seconds if p.seconds > 0 else None,
                last_step_seconds=p.last_step_seconds,
                eval_seconds=p.eval_seconds,
            )
        return info

    def _checkpoint(self, trainer: Trainer) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "trainer": trainer.state_dict(),
            "metrics": self.metrics,
            "continued": self.continued,
            "resumed": self.resumed,
            "started_at": self.started.isoformat(),
            "wall_seconds": self._wall_seconds(),
        }
        checkpoint.save(self.store, self.key(FILE_CHECKPOINT), state)
        self._put_metrics()
        self.log(
            "checkpoint", step=trainer.progress.step, seconds=round(trainer.progress.seconds, 3)
        )

    def _stop(self, trainer: Trainer) -> NoReturn:
        """Stop on a signal at this step boundary: checkpoint (a flush first, so it is exact),
        the log, then exit CANCELLED; the next attempt resumes from this step."""
        self.log("stop_requested", step=trainer.progress.step, **self.stop.describe())
        try:
            self._checkpoint(trainer)
        except StoreError as exc:  # still a stop: the retry resumes from the last checkpoint
            self.log("checkpoint_failed", error=str(exc))
        self._put_log()
        raise Stopped

    def _put_metrics(self) -> None:
        if len(self.metrics) == self._metrics_put:  # lines are only appended: nothing new
            return
        body = "".join(json.dumps(m) + "\n" for m in self.metrics)
        self.store.put(self.key(FILE_METRICS), body.encode())
        self._metrics_put = len(self.metrics)

    def _fail(self, reason: str) -> None:
        self.log("config_failed", error=reason)
        info = TrialInfo(**self._info(self.trainer))
        self._finish(
            TrialResult(trial_id=self.spec.trial_id, status="failed", error=reason, info=info)
        )

    def _finish(self, result: TrialResult) -> None:
        result = result.model_copy(
            update={"started_at": self.started, "finished_at": datetime.now(UTC)}
        )
        self._put_metrics()
        self.log("result", status=result.status, loss=result.loss, error=result.error)
        self._put_log()
        publish(self.store, self.spec, result)

    def _put_log(self) -> None:
        put_log(self.store, self.key(FILE_LOG), self.log)
