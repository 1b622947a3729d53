"""Fuzzing sweep files: whatever the bytes, reading one either gives a spec whose numbers the loop
can use, or a SpecError (exit 2) — never another exception (a traceback, exit 1)."""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.bohb.hyperband import Schedule
from controller.sweep.spec import SpecError, SweepSpec, read_sweep
from tests.sweeps import synthetic_sweep

BASE = synthetic_sweep(Path("/tmp/kubohb-fuzz"))
NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 1e-300, 5e-324, 0.0, -0.0, 1.0000001]),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
# `make chaos` (KUBOHB_CHAOS=1) fuzzes twenty times longer than `make test`.
EXAMPLES = 3000 if os.environ.get("KUBOHB_CHAOS") == "1" else 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] or [path]
    return [path]


LEAVES = _leaves(BASE)


def _usable(spec: SweepSpec) -> None:
    """What the loop computes from a spec at start: none of it may overflow or hang."""
    spec.space.build()
    schedule = Schedule(spec.budget.min, spec.budget.max, spec.budget.eta)
    now = datetime.now(UTC)
    for budget in schedule.budgets:
        now + timedelta(seconds=spec.deadline_s(budget) + spec.reserve_s(budget))
    now + timedelta(seconds=spec.poll_interval_s)
    spec.stop.deadline_at(now)


def _check(path: Path) -> None:
    try:
        spec, _ = read_sweep(path)
    except SpecError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        assert not any("pydantic.dev" in e for e in exc.errors), exc.errors
        return
    _usable(spec)


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_random_bytes(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "sweep.yaml"
    path.write_bytes(raw)
    _check(path)


@FUZZ
@given(where=st.sampled_from(LEAVES), value=NASTY)
def test_one_field_replaced_by_a_nasty_value(
    tmp_path_factory: Any, where: tuple[Any, ...], value: Any
) -> None:
    spec = copy.deepcopy(BASE)
    node = spec
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = tmp_path_factory.mktemp("fuzz") / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    _check(path)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n[]{}&*!|>'\",#%@`0.1e+")), max_size=300))
def test_yaml_punctuation(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "sweep.yaml"
    path.write_text(text)
    _check(path)
