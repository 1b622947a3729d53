"""The optimiser's log of asks and tells (what a sweep's journal records of BOHB): replayed on the
state it started from, it gives the same state, exactly, without sampling or fitting again."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.bohb import BOHB, Suggestion
from tests.bohb.test_bohb import counting_ones_space


def _drive(opt: BOHB, rng: np.random.Generator, steps: int, workers: int) -> list[Suggestion]:
    """Random interleaving of asks and tells with up to ``workers`` trials out at once."""
    out: list[Suggestion] = []
    running: list[Suggestion] = []
    for _ in range(steps):
        if running and (len(running) >= workers or rng.random() < 0.4):
            s = running.pop(int(rng.integers(len(running))))
            loss = None if rng.random() < 0.1 else float(rng.random())
            opt.tell(s.trial_id, loss)
            continue
        s2 = opt.ask()
        if s2 is not None:
            running.append(s2)
            out.append(s2)
    return out


def _same_state(a: BOHB, b: BOHB) -> None:
    assert json.dumps(a.state_dict(), sort_keys=True) == json.dumps(b.state_dict(), sort_keys=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    split=st.integers(0, 120),
    steps=st.integers(1, 200),
    workers=st.integers(1, 12),
    promotion=st.sampled_from(["sync", "async"]),
    limit=st.sampled_from([None, 2, 4]),
)
def test_a_replayed_log_rebuilds_the_state_exactly(
    seed: int, split: int, steps: int, workers: int, promotion: Any, limit: int | None
) -> None:
    opt = BOHB(counting_ones_space(), 1, 27, seed=seed, promotion=promotion, max_iterations=limit)
    rng = np.random.default_rng(seed)
    _drive(opt, rng, split, workers)
    snapshot = json.loads(json.dumps(opt.state_dict()))  # what a compaction writes
    opt.take_ops()
    _drive(opt, rng, steps, workers)
    ops = json.loads(json.dumps(opt.take_ops()))  # what the entries after it hold
    rebuilt = BOHB.from_state_dict(snapshot)
    rebuilt.replay(ops)
    _same_state(rebuilt, opt)
    assert rebuilt.take_ops() == []  # replaying logs nothing again
    # and both hand out the same trials from here on
    for _ in range(20):
        a, b = opt.ask(), rebuilt.ask()
        assert (a and (a.trial_id, a.config)) == (b and (b.trial_id, b.config))
        if a is not None and b is not None:
            opt.tell(a.trial_id, 0.5)
            rebuilt.tell(b.trial_id, 0.5)


def test_the_log_records_the_iteration_limit_each_ask_ran_under() -> None:
    """A sweep resumed with a raised max_iterations: asks before and after the change replay the
    way they ran, whatever limit the snapshot and the resumed spec hold."""
    opt = BOHB(counting_ones_space(), 1, 9, seed=1, max_iterations=1)
    snapshot = opt.state_dict()
    first = [opt.ask() for _ in range(20)]
    assert first[-1] is None  # bracket 0's first stage handed out; the limit holds the rest
    opt.max_iterations = 3  # the resumed spec raises it
    more = opt.ask()
    assert more is not None and more.iteration == 1
    rebuilt = BOHB.from_state_dict(snapshot)
    rebuilt.replay(opt.take_ops())
    assert rebuilt.max_iterations == 1  # replay leaves the limit as it found it
    rebuilt.max_iterations = 3
    _same_state(rebuilt, opt)


def test_empty_asks_are_logged_once_per_change() -> None:
    """An ask that hands out nothing is logged (it may close a stage), a second one with no tell
    in between is not: a sweep waiting on results, or a finished one run again, logs nothing."""
    opt = BOHB(counting_ones_space(), 1, 9, seed=1, max_iterations=1)
    asked = [opt.ask() for _ in range(9)]
    opt.take_ops()
    assert opt.ask() is None and opt.take_ops() == [{"ask": None, "max": 1}]
    assert opt.ask() is None and opt.take_ops() == []  # nothing changed since
    restored = BOHB.from_state_dict(opt.state_dict())  # "settled" is part of the state
    assert restored.ask() is None and restored.take_ops() == []
    first = asked[0]
    assert first is not None
    restored.tell(first.trial_id, 0.5)
    assert restored.ask() is None  # a tell since: logged again
    assert restored.take_ops() == [
        {"tell": first.trial_id, "loss": 0.5},
        {"ask": None, "max": 1},
    ]


def test_a_log_that_does_not_fit_the_state_is_refused() -> None:
    opt = BOHB(counting_ones_space(), 1, 9, seed=1)
    fresh = opt.state_dict()
    s = opt.ask()
    assert s is not None
    ops = opt.take_ops()
    ops[0]["ask"] = "it7-c7-r0"  # not what this state hands out
    with pytest.raises(ValueError, match="diverged at op 0"):
        BOHB.from_state_dict(fresh).replay(ops)
