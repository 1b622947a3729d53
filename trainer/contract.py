"""The trial contract between controller and trainer (torch-free; both images import it).

A TrialSpec is written by the controller to ``<root>/<sweep>/trials/<trial>/trial.json`` before
launch; the trainer writes a TrialResult to ``result.json`` in the same folder, once, last.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Trial ids and sweep names become Kubernetes object names and store keys: keep them DNS-safe.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)


class ExitCode(IntEnum):
    """A trial attempt's exit codes: the trainer's own (0, 2, 75, 143), read by the Kubernetes
    backend's podFailurePolicy and the local backend, and those the backends report for an
    attempt they ended or could not start (as timeout(1), a shell and SIGTERM do)."""

    OK = 0  # a result.json was written (status ok or failed)
    FAILED = 1  # failed without a code of its own (e.g. a Job's backoff limit)
    BAD_TRIAL = 2  # trial.json missing fields / invalid: retrying cannot help
    INFRA = 75  # EX_TEMPFAIL: store unreachable, data missing... retry (resumes from checkpoint)
    DEADLINE = 124  # the backend stopped the attempt at its deadline
    CANNOT_START = 127  # the trainer command was not found or is not executable
    # 128 + SIGTERM: the backend cancelled the attempt, or the trainer stopped on SIGTERM/SIGINT
    # after checkpointing (a reclaimed pod: retried, resumes from the checkpoint)
    CANCELLED = 143


# Finite numbers only: NaN or inf in a report is a bug that must name its field, not pass through.
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]

BudgetUnit = Literal["epochs", "seconds"]
Dataset = Literal["cifar10", "fashion_mnist", "synthetic"]

FILE_TRIAL = "trial.json"
FILE_RESULT = "result.json"
FILE_METRICS = "metrics.jsonl"
FILE_CHECKPOINT = "checkpoint.pt"
FILE_LOG = "trainer.log"
# The most a result.json may hold. A result is a loss and a few numbers; anything bigger (a
# trainer stuffing arrays into `info`) belongs in a file beside it, not in the controller's memory.
MAX_RESULT_BYTES = 1 << 20


def check_name(value: str, what: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return value


def trial_prefix(sweep: str, trial_id: str) -> str:
    """Store key prefix of one trial, relative to the store root."""
    return f"{sweep}/trials/{trial_id}"


def inbox_prefix(sweep: str) -> str:
    """The sweep's inbox: one empty marker per trial whose result.json was written."""
    return f"{sweep}/inbox"


def inbox_key(sweep: str, trial_id: str) -> str:
    return f"{inbox_prefix(sweep)}/{trial_id}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """Where the trainer finds its data set."""

    # A local directory, or an s3:// prefix downloaded once per pod and cached in `cache_dir`.
    location: str | None = None
    cache_dir: str | None = None
    download: bool = False  # let torchvision download when nothing is found (needs network)
    subset: Annotated[int, Field(gt=0)] | None = None  # use only this many training images
    val_size: Annotated[int, Field(gt=0)] | None = None  # held-out split size (default: 10 %)
    # Report test error on the first N test images only: the test error is never searched on,
    # and on tiny budgets the full test set costs more than the training.
    test_size: Annotated[int, Field(gt=0)] | None = None


class ContinueFrom(_Strict):
    """A promoted trial that continues its config's training at the rung below
    (``bohb.promotion_resume``): that trial's id and budget. The trainer starts from that trial's
    final checkpoint and trains only the increment; where the checkpoint is gone or belongs to
    another spec it trains from scratch (docs/trainer.md, "Promotions that continue")."""

    trial_id: str
    budget: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    @field_validator("trial_id")
    @classmethod
    def _trial_name(cls, v: str) -> str:
        return check_name(v, "continue_from.trial_id")


class TrialSpec(_Strict):
    sweep: str
    trial_id: str
    config: dict[str, Any]
    budget: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    budget_unit: BudgetUnit = "epochs"
    dataset: Dataset = "fashion_mnist"
    data: DataSource = DataSource()
    seed: Annotated[int, Field(ge=0)] = 0
    store_root: str  # the store root URL; outputs go to <root>/<sweep>/trials/<trial_id>/
    store_endpoint_url: str | None = None
    store_region: str | None = None
    max_params: Annotated[int, Field(gt=0)] | None = None  # bigger models fail as a bad config
    checkpoint_every_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 300.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # mixed precision where the device supports it (CUDA only)
    compile: bool = False  # torch.compile the model (GPU only)
    num_workers: Annotated[int, Field(ge=0)] = 2
    # Random, per trial: its result must carry it back, so a result.json written by another
    # trial (a wrong KUBOHB_TRIAL, a copied folder, a stale trainer of an old sweep of this name)
    # is rejected. Not a secret from trainers that may read every trial.json (docs/trainer.md).
    token: str | None = None
    continue_from: ContinueFrom | None = None

    @field_validator("sweep")
    @classmethod
    def _sweep_name(cls, v: str) -> str:
        return check_name(v, "sweep")

    @field_validator("trial_id")
    @classmethod
    def _trial_name(cls, v: str) -> str:
        return check_name(v, "trial_id")

    @model_validator(mode="after")
    def _continues_below(self) -> TrialSpec:
        lower = self.continue_from
        if lower is not None:
            if not lower.budget < self.budget:
                raise ValueError(
                    f"continue_from.budget: {lower.budget:g} must be below the budget "
                    f"{self.budget:g} (a promotion continues a lower rung)"
                )
            if lower.trial_id == self.trial_id:
                raise ValueError("continue_from.trial_id: a trial cannot continue itself")
        return self

    @property
    def prefix(self) -> str:
        return trial_prefix(self.sweep, self.trial_id)


class TrialInfo(BaseModel):
    """What the trainer reports beside the loss; never used for search except `loss`."""

    model_config = ConfigDict(extra="allow")

    val_accuracy: Fraction | None = None
    test_accuracy: Fraction | None = None  # recorded for reports, never used by BOHB
    test_error: Fraction | None = None
    params: Annotated[int, Field(ge=0)] | None = None
    epochs: NonNegative | None = None  # epochs run (fractional for a seconds budget)
    steps: Annotated[int, Field(ge=0)] | None = None
    train_seconds: NonNegative | None = None  # pure training-step time (the paper's budget unit)
    wall_seconds: NonNegative | None = None
    device: str | None = None
    images_per_second: NonNegative | None = None
    resumed: Annotated[int, Field(ge=0)] = 0  # how often this trial resumed from a checkpoint
    # a promotion that continued a lower rung's training: that trial, and the step and training
    # seconds this trial started from (its steps/train_seconds count the lower rung's too)
    continued_from: str | None = None
    start_step: Annotated[int, Field(ge=0)] | None = None
    start_seconds: NonNegative | None = None


class TrialResult(_Strict):
    trial_id: str
    status: Literal["ok", "failed"]
    # Validation error in [0, 1]; None when failed. NaN/inf are refused here with the field's name
    # (allow_inf_nan=False) so a diverged run can never be reported as ok.
    loss: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    info: TrialInfo = TrialInfo()
    error: str | None = None  # why it failed
    started_at: datetime | None = None
    finished_at: datetime | None = None
    token: str | None = None  # the trial.json's token, copied back (``trainer.results.publish``)

    @field_validator("trial_id")
    @classmethod
    def _trial_name(cls, v: str) -> str:
        return check_name(v, "trial_id")

    @model_validator(mode="after")
    def _loss_matches_status(self) -> TrialResult:
        if self.status == "ok":
            if self.loss is None or not math.isfinite(self.loss):
                raise ValueError("loss: an ok result needs a finite loss")
        elif not self.error:
            raise ValueError("error: a failed result must say why it failed")
        return self


class MetricsLine(BaseModel):
    """One line of metrics.jsonl."""

    model_config = ConfigDict(extra="allow")

    epoch: float
    step: int
    train_loss: float | None
    val_error: float | None
    lr: float
    seconds: float  # cumulative training-step seconds
    images_per_second: float | None = None
