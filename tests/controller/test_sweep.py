"""The sweep spec: every error with its field path, exit code 2, and the shipped examples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.sweep.runner import new_bohb
from controller.sweep.spec import SpecError, load_sweep, parse_sweep
from tests.sweeps import REPO, synthetic_sweep


def errors_of(data: dict | str) -> list[str]:
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    with pytest.raises(SpecError) as info:
        parse_sweep(text, "sweep.yaml")
    return info.value.errors


@pytest.mark.parametrize("example", sorted((REPO / "docs" / "examples").glob("*.yaml")))
def test_shipped_examples_are_valid(example: Path) -> None:
    spec = load_sweep(example)
    assert spec.name


def test_defaults_and_deadlines(tmp_path: Path) -> None:
    spec = parse_sweep(yaml.safe_dump(synthetic_sweep(tmp_path)))
    assert spec.trials.max_attempts == 3
    assert spec.bohb.model == "kubohb" and new_bohb(spec).knobs.random_fraction == 0.0
    faithful = parse_sweep(yaml.safe_dump(synthetic_sweep(tmp_path, bohb={"model": "faithful"})))
    assert new_bohb(faithful).knobs.random_fraction == 1 / 3
    # seconds budget: 9 s x factor 2 + 30 s allowance
    assert spec.deadline_s(9) == 48
    epochs = synthetic_sweep(tmp_path, budget={"unit": "epochs"}, trials={"seconds_per_epoch": 10})
    assert parse_sweep(yaml.safe_dump(epochs)).deadline_s(3) == 3 * 10 * 2 + 30


def test_every_error_is_reported_with_its_field_path(tmp_path: Path) -> None:
    data = synthetic_sweep(tmp_path, budget={"min": 0, "max": 9, "eta": 1})
    data["trainer"]["comand"] = ["x"]
    data["parallelism"] = 0
    data["bohb"] = {"model": "tpe"}
    lines = errors_of(data)
    assert any(line.startswith("bohb.model: ") and "faithful" in line for line in lines)
    assert "budget.min: must be > 0" in lines
    assert "budget.eta: must be > 1" in lines
    assert "parallelism: must be >= 1" in lines
    assert any(line.startswith("trainer.comand: unknown field") for line in lines)


def test_impossible_budgets(tmp_path: Path) -> None:
    lines = errors_of(synthetic_sweep(tmp_path, budget={"min": 27, "max": 9}))
    assert lines == ["budget: max (9) must be >= min (27)"]
    # a cap that not even one smallest trial fits into
    lines = errors_of(synthetic_sweep(tmp_path, stop={"max_gpu_hours": 0.001}))
    assert len(lines) == 1 and lines[0].startswith("stop.max_gpu_hours: even one trial")
    lines = errors_of(synthetic_sweep(tmp_path, stop={"max_iterations": None}))
    assert lines[0].startswith("stop: set at least one of")
    lines = errors_of(synthetic_sweep(tmp_path, stop={"max_cost": 5}))
    assert lines == [
        "stop.max_cost needs a price: stop.gpu_hour_price > 0 (the price of one device-hour) "
        "or cost.classes with prices"
    ]


def test_price_classes_are_checked_against_the_rungs(tmp_path: Path) -> None:
    two = {"a": {"price": 1, "rungs": [0]}, "b": {"price": 2, "rungs": [0, 1]}}
    assert errors_of(synthetic_sweep(tmp_path, cost={"classes": two})) == [
        "cost.classes: rung 0 is in both a and b"
    ]
    past = {"a": {"price": 1, "rungs": [0, 7]}}  # budgets 1, 3, 9: rungs 0..2
    assert errors_of(synthetic_sweep(tmp_path, cost={"classes": past})) == [
        "cost.classes.a.rungs: [7] out of range: the budget has 3 rungs (0..2)"
    ]
    # a money cap priced by the classes alone is fine
    priced = {"a": {"price": 1.5, "rungs": [0, 1, 2]}}
    spec = parse_sweep(
        yaml.safe_dump(synthetic_sweep(tmp_path, stop={"max_cost": 5}, cost={"classes": priced}))
    )
    assert spec.rung_prices() == [1.5, 1.5, 1.5] and spec.price_class(2)[0] == "a"


def test_inline_credentials_are_rejected(tmp_path: Path) -> None:
    data = synthetic_sweep(tmp_path)
    data["store"] = {"url": "s3://b/p", "credentials": {"aws_secret_access_key": "abc"}}
    lines = errors_of(data)
    assert len(lines) == 1
    assert "store.credentials.aws_secret_access_key: inline credentials are not allowed" in lines[0]
    assert "abc" not in lines[0]  # the secret itself is never echoed
    data["store"] = {"url": "s3://b/p", "credentials": {"secret": "kubohb-s3"}}
    assert parse_sweep(yaml.safe_dump(data)).store.credentials.secret == "kubohb-s3"


def test_space_errors_name_the_space(tmp_path: Path) -> None:
    data = synthetic_sweep(tmp_path, space={"parameters": [{"name": "x", "type": "float"}]})
    lines = errors_of(data)
    assert all(line.startswith("space") for line in lines), lines
    assert errors_of(synthetic_sweep(tmp_path, space={"builtin": "nope"}))[0].startswith("space:")


def test_malformed_yaml_says_line_and_column() -> None:
    lines = errors_of("name: x\nbudget: {min: 1, max: 9\nspace: [\n")
    assert len(lines) == 1 and lines[0].startswith("line "), lines
    assert "column" in lines[0] and "malformed YAML" in lines[0]
    assert errors_of("- just\n- a list\n")[0].startswith("the file must be a YAML mapping")


def test_validate_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(synthetic_sweep(tmp_path)))
    assert main(["validate", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(synthetic_sweep(tmp_path, budget={"min": -1}, parallelism=0)))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 error(s)" in err and "budget.min: must be > 0" in err and "parallelism" in err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    assert main(["run", str(bad)]) == 2  # run refuses it the same way, before touching a store


def test_deadline_forms(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    start = datetime(2026, 1, 1, tzinfo=UTC)
    for value, seconds in ((5400, 5400), ("90m", 5400), ("2h", 7200), ("1d", 86400), ("45s", 45)):
        spec = parse_sweep(yaml.safe_dump(synthetic_sweep(tmp_path, stop={"deadline": value})))
        at = spec.stop.deadline_at(start)
        assert at is not None and (at - start).total_seconds() == seconds
    spec = parse_sweep(
        yaml.safe_dump(synthetic_sweep(tmp_path, stop={"deadline": "2026-01-02T00:00:00Z"}))
    )
    assert spec.stop.deadline_at(start) == datetime(2026, 1, 2, tzinfo=UTC)
    lines = errors_of(synthetic_sweep(tmp_path, stop={"deadline": "soon"}))
    assert lines[0].startswith("stop.deadline:") and "neither a duration" in lines[0]


def test_the_controller_pins_its_own_blas_to_one_thread_and_not_its_trials() -> None:
    code = (
        "import os; from threadpoolctl import threadpool_info;"
        "from controller.sweep.runner import one_blas_thread; one_blas_thread();"
        "print(*{i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'},"
        " os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=REPO
    ).stdout
    assert out.split() == ["1", "None"]  # numpy's and scipy's BLAS: one thread; env untouched
