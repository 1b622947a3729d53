"""The Hyperband schedule against the spec's tables (§1.2-1.4) and the #110 precision cases."""

from __future__ import annotations

import pytest

from controller.bohb.hyperband import Schedule


def _table(schedule: Schedule) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    return [
        (schedule.bracket(i).num_configs, schedule.bracket(i).budgets)
        for i in range(schedule.max_sh_iter)
    ]


def test_1_to_81_matches_hpbandster_floor_form() -> None:
    s = Schedule(1, 81, 3)
    assert s.budgets == [1, 3, 9, 27, 81]
    assert _table(s) == [
        ((81, 27, 9, 3, 1), (1, 3, 9, 27, 81)),
        ((27, 9, 3, 1), (3, 9, 27, 81)),
        ((9, 3, 1), (9, 27, 81)),
        ((6, 2), (27, 81)),
        ((5,), (81,)),
    ]
    assert [s.bracket(i).total_budget for i in range(5)] == [405, 324, 243, 324, 405]


def test_zela2018_seconds_schedule() -> None:
    s = Schedule(400, 10800, 3)
    assert s.budgets == [400.0, 1200.0, 3600.0, 10800.0]
    assert [b for b, _ in _table(s)] == [(27, 9, 3, 1), (9, 3, 1), (6, 2), (4,)]
    # One Hyperband round: 65 evaluations and 45 h of training budget (spec §1.3).
    brackets = [s.bracket(i) for i in range(4)]
    assert sum(sum(b.num_configs) for b in brackets) == 65
    assert sum(b.total_budget for b in brackets) == 162_000


def test_counting_ones_schedule_and_cycling() -> None:
    s = Schedule(9, 729, 3)
    assert s.budgets == [9, 27, 81, 243, 729]
    assert [b for b, _ in _table(s)] == [(81, 27, 9, 3, 1), (27, 9, 3, 1), (9, 3, 1), (6, 2), (5,)]
    # Brackets cycle s = s_max..0 and repeat; iteration counts brackets, not rounds.
    assert (s.bracket(5).s, s.bracket(5).num_configs) == (4, s.bracket(0).num_configs)
    assert s.bracket(5).iteration == 5
    assert [s.bracket(i).first_rung for i in range(5)] == [0, 1, 2, 3, 4]


def test_precision_issue_110_is_fixed() -> None:
    # HpBandSter: log(1/243)/log(3) = -4.999999999999999 -> only 5 budgets starting at 3.
    s = Schedule(1, 243, 3)
    assert s.max_sh_iter == 6
    assert s.budgets[0] == 1.0
    assert s.budgets == [1, 3, 9, 27, 81, 243]
    assert Schedule(1, 1000, 10).budgets == [1, 10, 100, 1000]


def test_non_power_ratio_keeps_hpbandster_budgets() -> None:
    # The smallest budget is max * eta**-s_max, >= min_budget (spec §1.1).
    s = Schedule(1, 100, 3)
    assert s.max_sh_iter == 5
    assert s.budgets[0] == pytest.approx(100 / 81)
    assert s.budgets[-1] == 100
    assert _table(Schedule(1, 9, 3)) == [((9, 3, 1), (1, 3, 9)), ((3, 1), (3, 9)), ((3,), (9,))]


def test_single_budget() -> None:
    s = Schedule(5, 5, 3)
    assert s.budgets == [5.0]
    assert s.bracket(7).num_configs == (1,)


@pytest.mark.parametrize(("lo", "hi", "eta"), [(0, 1, 3), (2, 1, 3), (1, 9, 1)])
def test_invalid_schedules_are_rejected(lo: float, hi: float, eta: float) -> None:
    with pytest.raises(ValueError, match=r"budget|eta"):
        Schedule(lo, hi, eta)
