"""The conditional NAS-shaped benchmark problem: a valid conditional space, a known optimum with
regret 0, and a learning curve whose low-budget ranking misleads as documented."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.problems import _NAS_BEST, ConditionalNAS, evaluate
from controller.bohb.space import SearchSpace

PROBLEM = ConditionalNAS()
SPACE = SearchSpace.model_validate({"parameters": PROBLEM.parameters})


def test_the_space_is_conditional_and_the_optimum_is_a_valid_config() -> None:
    conditional = [p.name for p in SPACE.parameters if p.active_if]
    assert sorted(conditional) == ["beta1", "momentum", "shake_ratio", "width_2", "width_3"]
    assert SPACE.validate_config(_NAS_BEST) == _NAS_BEST  # every active value, nothing inactive
    assert PROBLEM.regret(_NAS_BEST) == 0.0


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_config_has_a_regret_in_range_and_a_finite_noisy_loss(seed: int) -> None:
    config = SPACE.sample(np.random.default_rng(seed))
    assert 0.0 <= PROBLEM.regret(config) < 1.0
    for budget in (1.0, 3.0, 27.0):
        assert np.isfinite(evaluate(PROBLEM, config, budget, seed))


def test_big_sgd_networks_look_worst_early_and_are_best_late() -> None:
    small_adam = {
        "optimizer": 1, "lr": 1e-3, "beta1": 0.9, "n_stages": 1, "width_1": 16,
        "block": 1, "dropout": 0.0,
    }  # fmt: skip
    rng = np.random.default_rng(0)
    early = [PROBLEM.loss(c, 1.0, rng) for c in (_NAS_BEST, small_adam)]
    late = [PROBLEM.loss(c, 27.0, rng) for c in (_NAS_BEST, small_adam)]
    assert early[0] > early[1] and late[0] < late[1]
