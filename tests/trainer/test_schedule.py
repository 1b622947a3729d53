"""SGDR-time first period, warm restarts and the epochs cosine (pure functions)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.schedule import (
    MAX_FIRST_PERIOD_S,
    Schedule,
    cosine_lr,
    first_period,
    sgdr_lr,
    total_steps,
)


@pytest.mark.parametrize(
    ("budget", "t0"), [(400, 400.0), (1200, 400.0), (3600, 514.2857), (10800, 720.0)]
)
def test_first_period_matches_the_authors_budgets(budget: float, t0: float) -> None:
    assert first_period(budget) == pytest.approx(t0, abs=1e-3)


@given(st.floats(min_value=0.01, max_value=1e6))
def test_the_budget_ends_at_a_cycle_end_with_the_largest_allowed_first_period(b: float) -> None:
    t0 = first_period(b)
    assert t0 <= MAX_FIRST_PERIOD_S or t0 == b
    k = round(math.log2(b / t0 + 1))
    assert t0 * (2**k - 1) == pytest.approx(b, rel=1e-9)  # budget = t0 (1 + 2 + ... + 2^(k-1))
    if k > 1:  # one cycle fewer would need a first period above the maximum
        assert b / (2 ** (k - 1) - 1) > MAX_FIRST_PERIOD_S


def test_sgdr_restarts_at_cycle_ends_and_reaches_zero_at_the_budget() -> None:
    assert sgdr_lr(0.1, 0.0, 400) == pytest.approx(0.1)
    assert sgdr_lr(0.1, 200.0, 400) == pytest.approx(0.05)
    assert sgdr_lr(0.1, 399.999, 400) == pytest.approx(0.0, abs=1e-6)
    assert sgdr_lr(0.1, 400.0, 400) == pytest.approx(0.1)  # restart, period now 800
    assert sgdr_lr(0.1, 800.0, 400) == pytest.approx(0.05)
    assert sgdr_lr(0.1, 1199.999, 400) == pytest.approx(0.0, abs=1e-6)


def test_epochs_schedule_is_one_cosine_over_fractional_budgets() -> None:
    s = Schedule.create("epochs", 0.2, 1.5, steps_per_epoch=10)
    assert s.total_steps == 15 == total_steps(1.5, 10)
    assert s.lr(0, 0.0) == pytest.approx(0.2)
    assert s.lr(15, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert not s.done(14, 1e9) and s.done(15, 0.0)
    assert cosine_lr(1.0, 0.5) == pytest.approx(0.5)
    assert total_steps(0.01, 10) == 1  # at least one step


def test_seconds_schedule_stops_at_the_first_step_reaching_the_budget() -> None:
    s = Schedule.create("seconds", 0.1, 1200, steps_per_epoch=10)
    assert s.t0 == pytest.approx(400.0)
    assert not s.done(10**6, 1199.99) and s.done(1, 1200.0)
