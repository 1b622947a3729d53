"""Read a sweep from its store into plain tables (no pandas): one TrialRow per trial folder.

The report is built from ``trials/<trial>/trial.json`` + ``result.json`` + ``metrics.jsonl`` alone,
so it works on a running sweep and on any store. Anything unreadable (a partial file, a result that
fails the contract) is skipped with a note instead of failing the report. ``state.json`` and the
journal entries after it are the controller's and read only for optional extras (GPU-hours, cost,
stop reason), defensively.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, ValidationError

from controller.log import event
from trainer.contract import (
    FILE_METRICS,
    FILE_RESULT,
    FILE_TRIAL,
    MetricsLine,
    TrialResult,
    TrialSpec,
)
from trainer.store import NotFound, Store, StoreError

# BOHB trial ids: it<iteration>-c<config>-r<rung>; the config id is it<iteration>-c<config>.
_TRIAL_ID_RE = re.compile(r"^(?P<config>it(?P<iteration>\d+)-c\d+)-r(?P<rung>\d+)$")
# Store reads are I/O bound (S3 round trips): fetch several trial folders at once.
_FETCH_THREADS = 16
_JOURNAL = "journal"  # the controller's entries after state.json (controller/sweep/journal.py)

TrialStatus = Literal["ok", "failed", "running"]


class CurvePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    epoch: float
    seconds: float
    val_error: float | None
    train_loss: float | None


class TrialRow(BaseModel):
    """One trial as the report sees it."""

    model_config = ConfigDict(frozen=True)

    trial_id: str
    config_id: str
    iteration: int | None
    rung: int | None
    config: dict[str, Any]
    budget: float
    budget_unit: str
    status: TrialStatus  # "running": trial.json is there, result.json is not (yet)
    loss: float | None  # finite when status == "ok"
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    params: int | None
    train_seconds: float | None
    wall_seconds: float | None
    curve: list[CurvePoint]
    spec: dict[str, Any]  # the trial.json as written, for the rerun command


class TrialMeta(BaseModel):
    """What the controller's trial record says beside the trial's own files (kubohb's state)."""

    model_based: bool | None = None  # BOHB proposed it from its model (False: sampled at random)
    queued_s: float | None = None  # seconds its ended attempts waited queued or pending
    preemptions: int | None = None  # running periods sent back to the queue


class StateExtras(BaseModel):
    """What the controller's state.json adds, when it has it (every field optional)."""

    gpu_hours: float | None = None
    cost: float | None = None
    stop_reason: str | None = None
    status: str | None = None
    gpu_seconds_by_trial: dict[str, float] = {}  # for GPU-hours over time, when recorded
    trials: dict[str, TrialMeta] = {}  # by trial id, when the state is kubohb's


class SweepData(BaseModel):
    sweep: str
    url: str
    trials: list[TrialRow]
    notes: list[str]  # what was skipped and why, shown on the page and in --json
    skipped: int = 0  # trial folders left out (unreadable trial.json or result.json)
    state: StateExtras | None
    spec_yaml: str | None


def config_key(trial_id: str, config: dict[str, Any]) -> tuple[str, int | None, int | None]:
    """(config id, iteration, rung) from a BOHB trial id; other ids key on the config itself."""
    match = _TRIAL_ID_RE.match(trial_id)
    if match:
        return match["config"], int(match["iteration"]), int(match["rung"])
    return "cfg-" + json.dumps(config, sort_keys=True, default=str), None, None


def parse_metrics(raw: bytes) -> tuple[list[CurvePoint], int]:
    """Curve points of a metrics.jsonl and how many lines were unreadable (a partial last line)."""
    points: list[CurvePoint] = []
    bad = 0
    for line in raw.decode(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            m = MetricsLine.model_validate_json(line)
        except ValidationError:
            bad += 1
            continue
        points.append(
            CurvePoint(
                epoch=m.epoch,
                seconds=m.seconds,
                val_error=_finite(m.val_error),
                train_loss=_finite(m.train_loss),
            )
        )
    return points, bad


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _get(store: Store, key: str) -> bytes | None:
    try:
        return store.get(key)
    except NotFound:
        return None


def load_trial(store: Store, trial_dir: str, files: set[str]) -> tuple[TrialRow | None, list[str]]:
    """One trial folder → a row (None when its trial.json is unusable) and notes on what was off."""
    notes: list[str] = []
    name = trial_dir.rsplit("/", 1)[-1]
    raw_spec = _get(store, f"{trial_dir}/{FILE_TRIAL}") if FILE_TRIAL in files else None
    if raw_spec is None:
        return None, [f"trial {name}: no {FILE_TRIAL}; skipped"]
    try:
        spec_dict = json.loads(raw_spec)
        spec = TrialSpec.model_validate(spec_dict)
    except (ValueError, ValidationError) as exc:
        return None, [
            f"trial {name}: {FILE_TRIAL} is not a valid TrialSpec ({_short(exc)}); skipped"
        ]
    result: TrialResult | None = None
    raw_result = _get(store, f"{trial_dir}/{FILE_RESULT}") if FILE_RESULT in files else None
    if raw_result is not None:
        try:
            result = TrialResult.model_validate_json(raw_result)
        except ValidationError as exc:
            notes.append(
                f"trial {name}: {FILE_RESULT} is not a valid TrialResult ({_short(exc)}); skipped"
            )
            return None, notes
        if result.trial_id != spec.trial_id:
            notes.append(f"trial {name}: {FILE_RESULT} names trial {result.trial_id!r}; skipped")
            return None, notes
    curve: list[CurvePoint] = []
    raw_metrics = _get(store, f"{trial_dir}/{FILE_METRICS}") if FILE_METRICS in files else None
    if raw_metrics is not None:
        curve, bad = parse_metrics(raw_metrics)
        if bad:
            notes.append(f"trial {name}: {bad} unreadable line(s) in {FILE_METRICS} ignored")
    config_id, iteration, rung = config_key(spec.trial_id, spec.config)
    info = result.info if result else None
    status: TrialStatus = result.status if result else "running"
    return (
        TrialRow(
            trial_id=spec.trial_id,
            config_id=config_id,
            iteration=iteration,
            rung=rung,
            config=dict(spec.config),
            budget=spec.budget,
            budget_unit=spec.budget_unit,
            status=status,
            loss=result.loss if result and result.status == "ok" else None,
            error=result.error if result else None,
            started_at=result.started_at if result else None,
            finished_at=result.finished_at if result else None,
            params=info.params if info else None,
            train_seconds=info.train_seconds if info else None,
            wall_seconds=info.wall_seconds if info else None,
            curve=curve,
            spec=spec_dict,
        ),
        notes,
    )


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def load_sweep(store: Store, url: str) -> SweepData:
    """Every trial under ``trials/`` of the store opened at the sweep's URL, plus state extras."""
    keys = store.list("trials/")
    folders: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "trials":
            folders.setdefault(f"trials/{parts[1]}", set()).add(parts[2])
    with _no_gc(), ThreadPoolExecutor(max_workers=_FETCH_THREADS) as pool:
        loaded = list(pool.map(lambda item: load_trial(store, *item), sorted(folders.items())))
    trials = [row for row, _ in loaded if row is not None]
    notes = [note for _, trial_notes in loaded for note in trial_notes]
    sweep = _sweep_name(trials, url)
    spec_yaml = _get(store, "spec.yaml")
    skipped = len(loaded) - len(trials)
    event("report.loaded", sweep=sweep, trials=len(trials), skipped=skipped)
    return SweepData(
        sweep=sweep,
        url=url,
        trials=trials,
        notes=notes,
        skipped=skipped,
        state=load_state(store, notes),
        spec_yaml=spec_yaml.decode(errors="replace") if spec_yaml is not None else None,
    )


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector off while the rows are built: they hold no cycles, and its
    passes over a heap that only grows took a fifth of the load (1.0 of 4.3 s at 10,000 trials,
    2.9 of 14.2 s at 30,000)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sweep_name(trials: list[TrialRow], url: str) -> str:
    for row in trials:
        name = row.spec.get("sweep")
        if isinstance(name, str):
            return name
    return url.rstrip("/").rsplit("/", 1)[-1] or "sweep"


def load_state(store: Store, notes: list[str]) -> StateExtras | None:
    try:
        raw = store.get_json("state.json")
    except NotFound:
        return None
    except StoreError as exc:
        notes.append(f"state.json unreadable ({_short(exc)}); GPU-hours and cost not shown")
        return None
    return state_extras(roll_forward(store, raw, notes))


def roll_forward(store: Store, raw: Any, notes: list[str]) -> Any:
    """state.json with the controller's journal entries after it applied (its snapshot is
    rewritten only now and then; controller/sweep/journal.py): each entry's sweep scalars replace
    the snapshot's and its trial records replace theirs. Read as defensively as the snapshot: an
    unreadable entry ends the roll forward with a note, and the figures are the last good ones."""
    if not (isinstance(raw, dict) and isinstance(raw.get("seq"), int)):
        return raw
    trials = raw.get("trials")
    trials = dict(trials) if isinstance(trials, dict) else {}
    raw = {**raw, "trials": trials}
    try:
        keys = store.list_after(_JOURNAL, f"{_JOURNAL}/{raw['seq']:012d}.json")
    except StoreError as exc:
        notes.append(f"journal unreadable ({_short(exc)}); GPU-hours and cost as of state.json")
        return raw
    for key in keys:
        try:
            entry = store.get_json(key)
        except StoreError as exc:
            notes.append(f"{key} unreadable ({_short(exc)}); GPU-hours and cost as of before it")
            break
        if not isinstance(entry, dict):
            notes.append(f"{key} is not a journal entry; GPU-hours and cost as of before it")
            break
        if isinstance(scalars := entry.get("sweep"), dict):
            raw.update((k, v) for k, v in scalars.items() if k not in ("trials", "seq"))
        if isinstance(changed := entry.get("trials"), dict):
            trials.update(changed)
    return raw


def state_extras(raw: Any) -> StateExtras | None:
    """Pick GPU-hours, cost and stop reason out of a state.json whose schema is not ours.

    Top-level totals win; otherwise per-trial ``gpu_seconds``/``cost`` in a ``trials`` table (a
    list of rows or a mapping of trial id → row) are summed.
    """
    if not isinstance(raw, dict):
        return None
    totals: dict[str, Any] = raw["totals"] if isinstance(raw.get("totals"), dict) else {}
    cost_block: dict[str, Any] = raw["cost"] if isinstance(raw.get("cost"), dict) else {}

    def number(*names: str, scopes: tuple[dict[str, Any], ...] = (raw, totals)) -> float | None:
        for scope in scopes:
            for name in names:
                if is_number(value := scope.get(name)):
                    return float(value)
        return None

    gpu_hours = number("gpu_hours")
    if gpu_hours is None and (seconds := number("gpu_seconds")) is not None:
        gpu_hours = seconds / 3600.0
    cost = number("cost", "cost_total", "total_cost")
    if cost is None:
        cost = number("total", scopes=(cost_block,))  # {"cost": {"total": ...}}
    rows = raw.get("trials")
    by_trial: dict[str, float] = {}
    meta: dict[str, TrialMeta] = {}
    if isinstance(rows, dict):
        by_trial = {
            str(k): float(r["gpu_seconds"])
            for k, r in rows.items()
            if isinstance(r, dict) and is_number(r.get("gpu_seconds"))
        }
        meta = {str(k): _meta(r) for k, r in rows.items() if isinstance(r, dict)}
        rows = list(rows.values())
    if isinstance(rows, list) and (gpu_hours is None or cost is None):
        gpu_s = [
            r["gpu_seconds"]
            for r in rows
            if isinstance(r, dict) and is_number(r.get("gpu_seconds"))
        ]
        costs = [r["cost"] for r in rows if isinstance(r, dict) and is_number(r.get("cost"))]
        if gpu_hours is None and gpu_s:
            gpu_hours = sum(gpu_s) / 3600.0
        if cost is None and costs:
            cost = float(sum(costs))
    stop = raw.get("stop_reason")
    status = raw.get("status")
    return StateExtras(
        gpu_hours=gpu_hours,
        cost=cost,
        stop_reason=stop if isinstance(stop, str) else None,
        status=status if isinstance(status, str) else None,
        gpu_seconds_by_trial=by_trial,
        trials=meta,
    )


def _meta(row: dict[str, Any]) -> TrialMeta:
    model, queued, preempted = row.get("model_based"), row.get("queued_s"), row.get("preemptions")
    return TrialMeta(
        model_based=model if isinstance(model, bool) else None,
        queued_s=float(queued) if is_number(queued) and math.isfinite(queued) else None,
        preemptions=int(preempted)
        if isinstance(preempted, int) and not isinstance(preempted, bool)
        else None,
    )


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool): a value the report can plot."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
