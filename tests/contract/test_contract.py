"""The trial contract: strict models whose errors name the field, and a lossless JSON round trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from trainer.contract import (
    NAME_PATTERN,
    MetricsLine,
    TrialInfo,
    TrialResult,
    TrialSpec,
    check_name,
    trial_prefix,
)

SPEC: dict[str, Any] = {
    "sweep": "cifar-sweep",
    "trial_id": "t-0-0-1",
    "config": {"lr": 0.1, "res_branches_1": 2},
    "budget": 3.0,
    "store_root": "s3://bucket/runs",
}


def _error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(part) for part in err["loc"]) for err in exc.errors()}


@pytest.mark.parametrize("model", [TrialSpec, TrialResult])
def test_unknown_fields_are_refused_by_name(model: type[TrialSpec | TrialResult]) -> None:
    base = SPEC if model is TrialSpec else {"trial_id": "t1", "status": "ok", "loss": 0.1}
    with pytest.raises(ValidationError) as info:
        model.model_validate({**base, "learning_rate": 0.1})
    assert _error_fields(info.value) == {"learning_rate"}
    assert "learning_rate" in str(info.value)


def test_unknown_nested_data_field_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        TrialSpec.model_validate({**SPEC, "data": {"location": "/d", "shuffle": True}})
    assert _error_fields(info.value) == {"data.shuffle"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("budget", 0),
        ("budget", -1.0),
        ("budget", math.inf),
        ("budget", math.nan),
        ("seed", -1),
        ("num_workers", -1),
        ("checkpoint_every_s", 0),
        ("max_params", 0),
        ("budget_unit", "minutes"),
        ("dataset", "imagenet"),
        ("device", "tpu"),
        ("sweep", "Has_Upper"),
        ("trial_id", "-starts-with-dash"),
        ("trial_id", "x" * 64),
    ],
)
def test_spec_out_of_range_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        TrialSpec.model_validate({**SPEC, field: value})
    assert _error_fields(info.value) == {field}
    assert field in str(info.value)


@pytest.mark.parametrize(("field", "value"), [("subset", 0), ("val_size", -5)])
def test_data_source_out_of_range_names_the_nested_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as info:
        TrialSpec.model_validate({**SPEC, "data": {field: value}})
    assert _error_fields(info.value) == {f"data.{field}"}


@pytest.mark.parametrize("loss", [None, math.nan, math.inf, -math.inf, -0.01, 1.01])
def test_ok_result_needs_a_finite_loss_in_unit_range(loss: float | None) -> None:
    with pytest.raises(ValidationError) as info:
        TrialResult(trial_id="t1", status="ok", loss=loss)
    assert "loss" in str(info.value)


def test_failed_result_needs_a_reason_and_may_have_no_loss() -> None:
    with pytest.raises(ValidationError, match="error: a failed result must say why"):
        TrialResult(trial_id="t1", status="failed")
    failed = TrialResult(trial_id="t1", status="failed", error="CUDA out of memory")
    assert failed.loss is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("val_accuracy", 1.5),
        ("test_error", -0.1),
        ("params", -1),
        ("train_seconds", math.nan),
        ("resumed", -1),
    ],
)
def test_info_out_of_range_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        TrialResult.model_validate(
            {"trial_id": "t1", "status": "ok", "loss": 0.2, "info": {field: value}}
        )
    assert _error_fields(info.value) == {f"info.{field}"}


def test_info_keeps_extra_trainer_figures() -> None:
    info = TrialInfo.model_validate({"params": 10, "eval_seconds": 1.5})
    assert info.model_dump()["eval_seconds"] == 1.5


def test_names_and_prefix() -> None:
    assert check_name("a-1", "sweep") == "a-1"
    with pytest.raises(ValueError, match="sweep 'A' must be"):
        check_name("A", "sweep")
    spec = TrialSpec.model_validate(SPEC)
    assert spec.prefix == trial_prefix("cifar-sweep", "t-0-0-1") == "cifar-sweep/trials/t-0-0-1"


# --- JSON round trips (hypothesis) ----------------------------------------------------------------

_names = st.from_regex(NAME_PATTERN, fullmatch=True)
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _finite | st.text()
_config = st.dictionaries(st.text(min_size=1, max_size=20), _json_scalar, max_size=8)
_data = st.fixed_dictionaries(
    {},
    optional={
        "location": st.text(max_size=30),
        "subset": st.integers(1, 10**6),
        "val_size": st.integers(1, 10**5),
        "download": st.booleans(),
    },
)
_specs = st.fixed_dictionaries(
    {
        "sweep": _names,
        "trial_id": _names,
        "config": _config,
        "budget": st.floats(min_value=1e-6, max_value=1e6),
        "store_root": st.sampled_from(["s3://b/p", "file:///tmp/s", "/tmp/plain"]),
    },
    optional={
        "budget_unit": st.sampled_from(["epochs", "seconds"]),
        "dataset": st.sampled_from(["cifar10", "fashion_mnist", "synthetic"]),
        "data": _data,
        "seed": st.integers(0, 2**31),
        "max_params": st.integers(1, 10**9),
        "checkpoint_every_s": st.floats(min_value=0.1, max_value=1e5),
        "amp": st.booleans(),
        "num_workers": st.integers(0, 16),
    },
)
_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda t: t.replace(tzinfo=UTC)
)
_info = st.fixed_dictionaries(
    {},
    optional={
        "val_accuracy": st.floats(0.0, 1.0),
        "params": st.integers(0, 10**9),
        "epochs": st.floats(0.0, 1e4),
        "device": st.text(max_size=10),
        "resumed": st.integers(0, 100),
    },
)
_ok = st.fixed_dictionaries(
    {"trial_id": _names, "status": st.just("ok"), "loss": st.floats(0.0, 1.0), "info": _info},
    optional={"started_at": _times, "finished_at": _times},
)
_failed = st.fixed_dictionaries(
    {"trial_id": _names, "status": st.just("failed"), "error": st.text(min_size=1), "info": _info}
)
_results = _ok | _failed


@settings(max_examples=60, deadline=None)
@given(raw=_specs)
def test_trial_spec_json_round_trip(raw: dict[str, Any]) -> None:
    spec = TrialSpec.model_validate(raw)
    again = TrialSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


@settings(max_examples=60, deadline=None)
@given(raw=_results)
def test_trial_result_json_round_trip(raw: dict[str, Any]) -> None:
    result = TrialResult.model_validate(raw)
    again = TrialResult.model_validate_json(result.model_dump_json(indent=1))
    assert again == result


def test_metrics_line_round_trip_keeps_extra_fields() -> None:
    line = MetricsLine(epoch=1.5, step=30, train_loss=None, val_error=0.4, lr=0.01, seconds=2.0)
    raw = line.model_dump_json()
    assert MetricsLine.model_validate_json(raw) == line
    extra = MetricsLine.model_validate({**line.model_dump(), "grad_norm": 3.0})
    assert extra.model_dump()["grad_norm"] == 3.0
