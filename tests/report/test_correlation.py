"""Spearman rank correlation across budgets: equals scipy's, and never a number on < 3 pairs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from controller.report.correlation import (
    NOT_ENOUGH,
    correlate,
    correlation_across_budgets,
    losses_by_budget,
)

losses = st.dictionaries(
    st.sampled_from([f"c{i}" for i in range(12)]),
    st.floats(0, 1, allow_nan=False),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(a=losses, b=losses)
def test_correlate_equals_scipy(a: dict[str, float], b: dict[str, float]) -> None:
    pair = correlate(a, b, 1.0, 3.0)
    shared = sorted(a.keys() & b.keys())
    assert pair.n == len(shared)
    if len(shared) < 3:
        assert (pair.rho, pair.p_value, pair.note) == (None, None, NOT_ENOUGH)
        return
    xs, ys = [a[k] for k in shared], [b[k] for k in shared]
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        assert pair.rho is None and pair.note is not None
        return
    expected = spearmanr(xs, ys)
    assert pair.rho == pytest.approx(expected.statistic, abs=1e-12)


def test_table_drops_failed_and_non_finite_losses() -> None:
    rows = [("c1", 1.0, 0.5), ("c2", 1.0, None), ("c3", 1.0, math.nan), ("c4", 1.0, math.inf)]
    assert losses_by_budget(rows) == {1.0: {"c1": 0.5}}


def test_every_pair_once_in_order() -> None:
    table = {b: {f"c{i}": (i * b) % 7 / 7 for i in range(6)} for b in (9.0, 1.0, 3.0)}
    pairs = correlation_across_budgets(table)
    assert [(p.budget_a, p.budget_b) for p in pairs] == [(1.0, 3.0), (1.0, 9.0), (3.0, 9.0)]
    assert all(p.n == 6 and p.rho is not None for p in pairs)
