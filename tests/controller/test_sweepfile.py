"""Sweep files that are not what they seem: refused with exit 2 and a one-line reason, never a
traceback, a hang or runaway memory (controller/sweep/sweepfile.py)."""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.cli import main
from controller.sweep import sweepfile
from controller.sweep.spec import SpecError, parse_sweep, read_sweep
from tests.sweeps import synthetic_sweep

GOOD = "name: ok\n"  # a YAML mapping; what the loader returns is all these tests look at


def _refusal(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``kubohb validate`` on the file: exit 2, and its one error line."""
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    with pytest.raises(SpecError) as exc:
        read_sweep(path)
    assert len(exc.value.errors) == 1, exc.value.errors
    return exc.value.errors[0]


@pytest.mark.timeout(30)  # a FIFO blocked `open` until a writer came: this test hung before
def test_a_fifo_a_device_and_a_directory_are_refused_without_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "sweep.fifo"
    os.mkfifo(fifo)
    assert "not a regular file (a FIFO, socket or device)" in _refusal(fifo, capsys)
    assert "not a regular file" in _refusal(Path("/dev/zero"), capsys)
    assert "not a regular file (a directory)" in _refusal(tmp_path, capsys)


def test_a_big_file_is_refused_by_its_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * sweepfile.MAX_BYTES + "\n" + GOOD)
    assert "larger than 1024 KB" in _refusal(big, capsys)


def test_encodings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(GOOD.encode("utf-16"))  # with its BOM
    assert _refusal(utf16, capsys) == "the file is UTF-16; save it as UTF-8"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"# ok\nname: caf\xe9\n")
    assert _refusal(latin1, capsys) == "not UTF-8 (byte 0xe9 on line 2); save the file as UTF-8"
    bom = tmp_path / "bom.yaml"  # a UTF-8 BOM (Windows editors write one) is fine
    bom.write_bytes(codecs.BOM_UTF8 + yaml.safe_dump(synthetic_sweep(tmp_path)).encode())
    assert read_sweep(bom)[0].name == "syn"


def _yaml_error(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        parse_sweep(text)
    assert len(exc.value.errors) == 1, exc.value.errors
    return exc.value.errors[0]


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "".join(f"{' ' * i}k{i}:\n" for i in range(2_000)),
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_refused_before_python_recursion_runs_out(text: str) -> None:
    error = _yaml_error(text)
    assert error.startswith("line ") and f"nested deeper than {sweepfile.MAX_DEPTH} levels" in error


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    error = _yaml_error("\n".join(lines) + "\n")  # 9**10 values once expanded
    assert f"more than {sweepfile.MAX_NODES:,} values once its aliases are expanded" in error


def test_a_duplicate_key_is_refused_where_it_is() -> None:
    error = _yaml_error("name: a\nparallelism: 2\nname: b\n")
    assert error == (
        "line 3, column 1: malformed YAML (duplicate key 'name': YAML would keep only the last one)"
    )
    nested = _yaml_error("name: a\nbudget:\n  min: 1\n  min: 2\n")
    assert nested.startswith("line 4, column 3:") and "duplicate key 'min'" in nested


def test_anchors_and_merge_keys_still_work() -> None:
    text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nagain: *b\n"
    assert sweepfile.load(text) == {
        "base": {"x": 1, "y": 2},
        "use": {"x": 1, "y": 3},  # an explicit key overrides a merged one: not a duplicate
        "again": {"x": 1, "y": 2},
    }
    assert sweepfile.load("") is None


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"trials": {"startup_allowance_s": float("inf")}}, "trials.startup_allowance_s: "),
        ({"stop": {"max_gpu_hours": float("inf")}}, "stop.max_gpu_hours: "),
        ({"budget": {"eta": float("nan")}}, "budget.eta: "),
        ({"poll_interval_s": 1e308}, "poll_interval_s: must be <= 3600"),
        ({"trials": {"queue_timeout_s": 1e308}}, "trials.queue_timeout_s: must be <= 3.16224e+07"),
        ({"budget": {"unit": "seconds", "min": 1, "max": 1e308}}, "budget: max (1e+308) must be"),
        (
            {"budget": {"min": 1e-300, "max": 1}},
            "budget: min 1e-300, max 1 and eta 3 give 629 budgets (at most 32): raise min or eta",
        ),
        (
            {"budget": {"min": 1, "max": 9, "eta": 1.0000001}},
            "budget: min 1, max 9 and eta 1.0000001 give 21,972,247 budgets",
        ),
        ({"backend": {"local": {"cancel_grace_s": float("inf")}}}, "backend.local.cancel_grace_s"),
        ({"budget": {"min": 5e-324, "max": 9}}, "budget: max / min (9 / 4.94066e-324) is not a"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_numbers_that_would_overflow_a_clock_or_a_schedule_are_refused_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(synthetic_sweep(tmp_path, **over)))  # .inf / .nan in YAML
    error = _refusal(path, capsys)
    assert error.startswith(expected.split(":")[0]) and expected in error, error


def _space(*params: dict[str, object]) -> dict[str, object]:
    return {"parameters": list(params)}


X = {"name": "x", "type": "float", "low": 0.0, "high": 1.0}


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"store": {"url": "s3://"}}, "store.url: 's3://' names no bucket: use s3://bucket/prefix"),
        ({"store": {"url": "file://"}}, "store.url: 'file://' names no folder"),
        (
            {"budget": {"min": 1, "max": 9, "eta": 1e308}},
            "budget: eta (1e+308) is larger than max / min (9): only max would ever run",
        ),
        (
            {"space": _space({"name": "c", "type": "categorical", "choices": [0.5, float("nan")]})},
            "space.parameters.0.categorical.choices: nan is not a finite number",
        ),
        (
            {"space": _space({**X, "high": float("inf")})},
            "space.parameters.0.float.high: Input should be a finite number",
        ),
        (
            {"space": _space(X, {**X, "name": "y", "active_if": {"x": [0.5]}})},
            "space: parameter 'y': active_if on the float parameter 'x' matches only that exact",
        ),
    ],
    ids=lambda v: str(v)[:40],
)
def test_accepted_before_but_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(synthetic_sweep(tmp_path, **over)))
    error = _refusal(path, capsys)
    assert error.startswith(expected), error
    assert "pydantic.dev" not in error
