"""``BOHB.wind_down``: no new config and no new bracket, the open brackets finished with the configs
they started, their best promoted to the largest budget; replayed and restored exactly."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.bohb import BOHB
from controller.bohb.iteration import wound_down
from tests.bohb.test_bohb import counting_ones_space
from tests.bohb.test_replay import _drive, _same_state


def _run_out(opt: BOHB, rng: np.random.Generator) -> list[Any]:
    """Ask and tell until nothing is handed out and nothing runs; every suggestion, in order."""
    out, running = [], []
    while True:
        s = opt.ask()
        if s is not None:
            out.append(s)
            running.append(s)
            continue
        if not running:
            return out
        done = running.pop(0)
        opt.tell(done.trial_id, float(rng.random()))


@pytest.mark.parametrize("promotion", ["sync", "async"])
def test_after_a_wind_down_only_promotions_run_and_the_top_budget_is_reached(
    promotion: Any,
) -> None:
    opt = BOHB(counting_ones_space(), 1, 27, seed=3, promotion=promotion)  # open-ended
    first = [opt.ask() for _ in range(10)]  # 10 of the 27 configs of bracket 0's stage 0
    assert all(s is not None and s.budget == 1 for s in first)
    rng = np.random.default_rng(0)
    opt.wind_down()
    assert opt.wound_down and opt.outstanding() == {3.0: 3, 9.0: 1, 27.0: 1}
    for s in first:
        assert s is not None
        opt.tell(s.trial_id, float(rng.random()))
    later = _run_out(opt, rng)
    assert {s.iteration for s in later} == {0}  # no bracket opened after the wind-down
    assert [s.budget for s in later] == [3.0] * 3 + [9.0, 27.0]  # promotions only, to the top
    assert all(s.config_id in {f.config_id for f in first if f} for s in later)
    assert opt.finished and opt.ask() is None
    incumbent = opt.incumbent()
    assert incumbent is not None and incumbent.budget == 27.0


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    before=st.integers(0, 80),
    after=st.integers(1, 120),
    workers=st.integers(1, 8),
    promotion=st.sampled_from(["sync", "async"]),
)
def test_a_wind_down_replays_and_restores_exactly(
    seed: int, before: int, after: int, workers: int, promotion: Any
) -> None:
    opt = BOHB(counting_ones_space(), 1, 27, seed=seed, promotion=promotion)
    rng = np.random.default_rng(seed)
    _drive(opt, rng, before, workers)
    snapshot = json.loads(json.dumps(opt.state_dict()))
    opt.take_ops()
    opt.wind_down()
    _drive(opt, rng, after, workers)
    ops = json.loads(json.dumps(opt.take_ops()))
    assert any("wind_down" in op for op in ops)
    rebuilt = BOHB.from_state_dict(snapshot)
    rebuilt.replay(ops)
    _same_state(rebuilt, opt)
    restored = BOHB.from_state_dict(json.loads(json.dumps(opt.state_dict())))
    _same_state(restored, opt)
    assert restored.wound_down


@given(
    sizes=st.lists(st.integers(1, 81), min_size=1, max_size=5).map(
        lambda s: sorted(s, reverse=True)
    ),
    data=st.data(),
)
def test_wound_down_sizes_keep_what_started_and_a_path_to_the_top(
    sizes: list[int], data: st.DataObject
) -> None:
    actual = [data.draw(st.integers(0, n)) for n in sizes]
    out = wound_down(sizes, actual)
    assert out[0] == actual[0]  # no new config at stage 0
    for k in range(1, len(sizes)):
        assert actual[k] <= out[k] <= max(sizes[k], actual[k])  # never fewer than promoted
        assert out[k] <= max(out[k - 1], actual[k])  # no stage bigger than the one below
        if out[k - 1] > 0:
            assert out[k] >= 1  # a started bracket still reaches the top
