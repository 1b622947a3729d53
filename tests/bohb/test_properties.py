"""Hypothesis properties of BOHB over random search spaces and random ask/tell interleavings."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.bohb import BOHB, Suggestion
from controller.bohb.space import SearchSpace
from tests.bohb.test_space import spaces

# One step: ("ask", _, _) or ("tell", which pending trial, loss) where loss < 0.1 means failure.
steps = st.lists(
    st.tuples(st.sampled_from(["ask", "ask", "tell"]), st.integers(0, 50), st.floats(0, 1)),
    min_size=20,
    max_size=160,
)


def _apply(opt: BOHB, step: tuple[str, int, float]) -> Suggestion | None:
    action, pick, loss = step
    if action == "ask":
        return opt.ask()
    pending = opt.pending()
    if pending:
        opt.tell(pending[pick % len(pending)], None if loss < 0.1 else loss)
    return None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 2**31), plan=steps, cut=st.floats(0, 1))
def test_suggestions_valid_failures_never_promoted_resume_exact(
    space, seed: int, plan: list, cut: float
) -> None:
    opt = BOHB(space, 1, 9, eta=3, seed=seed, max_iterations=8, random_fraction=0.2)
    failed: set[str] = set()
    asked: list[Suggestion | None] = []
    clone: BOHB | None = None
    cut_at = int(cut * len(plan))
    clone_asked: list[Suggestion | None] = []
    for i, step in enumerate(plan):
        if i == cut_at:  # a controller restart: JSON snapshot, fresh object, same future calls
            clone = BOHB.from_state_dict(json.loads(json.dumps(opt.state_dict(), allow_nan=False)))
        pending_before = set(opt.pending())
        s = _apply(opt, step)
        if clone is not None:
            clone_asked.append(_apply(clone, step))
        if step[0] == "tell" and pending_before:
            told = pending_before - set(opt.pending())
            for trial_id in told:
                it, idx, _ = trial_id.split("-")
                if step[2] < 0.1:
                    failed.add(f"{it}-{idx}")
        asked.append(s)
        if s is None:
            continue
        assert space.validate_config(s.config) == s.config  # valid, conditions respected
        assert s.config_id not in failed  # a failed config never runs again
        assert s.budget == opt.budgets[s.rung]
    assert clone is not None or cut_at == len(plan)
    if clone is not None:
        assert clone_asked == asked[cut_at:]
        assert clone.state_dict() == opt.state_dict()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), fail_rate=st.floats(0, 0.6))
def test_model_based_suggestions_are_valid_with_conditions_and_failures(
    seed: int, fail_rate: float
) -> None:
    space_dict = {
        "parameters": [
            {"name": "opt", "type": "categorical", "choices": ["sgd", "adam", "rms"]},
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1, "log": True},
            {
                "name": "momentum",
                "type": "float",
                "low": 0,
                "high": 1,
                "active_if": {"opt": ["sgd", "rms"]},
            },
            {
                "name": "nesterov",
                "type": "categorical",
                "choices": [True, False],
                "active_if": {"opt": ["sgd"]},
            },
            {
                "name": "decay",
                "type": "categorical",
                "choices": ["step", "cos"],
                "active_if": {"nesterov": [True], "opt": ["sgd"]},
            },
            {"name": "layers", "type": "int", "low": 1, "high": 8, "log": True},
        ]
    }
    space = SearchSpace.model_validate(space_dict)
    opt = BOHB(space, 1, 1, seed=seed, random_fraction=0.0)
    rng = np.random.default_rng(seed)
    model_based = 0
    for _ in range(60):
        s = opt.ask()
        assert s is not None
        assert space.validate_config(s.config) == s.config
        model_based += s.model_based
        loss = math.nan if rng.random() < fail_rate else float(rng.random() + s.config["lr"])
        opt.tell(s.trial_id, loss)
    assert model_based > 0  # with d = 6 the model exists after 12 results
