"""The model's deviations from HpBandSter behind knobs: scoring only a candidate's active
dimensions (``marginal``) and one model over every budget's results (``all_budgets``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.bohb import BOHB, kde
from controller.bohb.model import POOLED, ConfigGenerator, ModelKnobs
from controller.bohb.space import SearchSpace

NAS: list[dict[str, Any]] = [
    {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
    {"name": "n_stages", "type": "int", "low": 1, "high": 3},
    {"name": "lr", "type": "float", "low": 1e-4, "high": 1, "log": True},
    {"name": "momentum", "type": "float", "low": 0, "high": 0.99,
     "active_if": {"optimizer": ["sgd"]}},
    {"name": "width_2", "type": "int", "low": 8, "high": 64, "active_if": {"n_stages": [2, 3]}},
    {"name": "width_3", "type": "int", "low": 8, "high": 64, "active_if": {"n_stages": [3]}},
    {"name": "block", "type": "categorical", "choices": ["plain", "shake"],
     "active_if": {"n_stages": [3]}},
    {"name": "shake", "type": "float", "low": 0, "high": 1, "active_if": {"block": ["shake"]}},
]  # fmt: skip


def nas_space() -> SearchSpace:
    return SearchSpace.model_validate({"parameters": NAS})


def knobs(**kw: Any) -> ModelKnobs:
    base: dict[str, Any] = {
        "min_points_in_model": 9,
        "top_n_percent": 15,
        "num_samples": 64,
        "random_fraction": 0.0,
        "bandwidth_factor": 3.0,
        "min_bandwidth": 1e-3,
    }
    return ModelKnobs(**{**base, **kw})


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_active_mask_is_what_decoding_keeps(seed: int) -> None:
    space = nas_space()
    rng = np.random.default_rng(seed)
    vectors = np.array([space.sample_vector(rng) for _ in range(40)])
    vectors[rng.random(vectors.shape) < 0.1] = math.nan  # NaN entries: inactive, and children
    kept = np.array([~np.isnan(space.encode(space.decode(v))) for v in vectors])
    assert (space.active_mask(vectors) == kept).all()


def test_the_marginal_density_is_the_density_of_the_active_dimensions_alone() -> None:
    rng = np.random.default_rng(0)
    n_choices = np.array([0, 3, 0, 0, 4])
    data = rng.random((25, 5))
    data[:, 1], data[:, 4] = rng.integers(0, 3, 25), rng.integers(0, 4, 25)
    full = kde.fit(data, n_choices)
    x = rng.random((30, 5))
    x[:, 1], x[:, 4] = rng.integers(0, 3, 30), rng.integers(0, 4, 30)
    active = rng.random((30, 5)) < 0.6
    got = full.pdf(x, active)
    for i in range(len(x)):
        on = active[i]
        if not on.any():
            assert got[i] == 1.0  # no dimension left: the density of nothing
            continue
        part = kde.KDE(data=data[:, on], bw=full.bw[on], levels=full.levels[on])
        assert math.isclose(got[i], float(part.pdf(x[i, on])[0]), rel_tol=1e-9)
    assert np.allclose(full.pdf(x, np.ones_like(active)), full.pdf(x), rtol=1e-12)


def fed(gen: ConfigGenerator, space: SearchSpace, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        config = space.sample(rng)
        gen.observe(0, space.encode(config), float(config["lr"]) + rng.random() * 0.1)


def test_a_marginal_score_ignores_what_inactive_dimensions_hold() -> None:
    """The bug class issue "search quality" asked to catch: HpBandSter scores a candidate on
    its whole vector, so the leftover values of inactive dimensions (copied from other configs
    by the imputation, then perturbed) change which candidate wins, although decoding drops
    them. Scored marginally they cannot."""
    space = nas_space()
    scores = {}
    for marginal in (False, True):
        gen = ConfigGenerator(space, 1, knobs(marginal=marginal), seed=1)
        fed(gen, space, 60, seed=2)
        good, bad = gen._models(0)
        cand = good.data[:20].copy()
        active = space.active_mask(cand)
        assert not active.all()  # some candidates have inactive dimensions
        noise = np.random.default_rng(3).random(cand.shape)
        shuffled = np.where(active, cand, np.where(space.n_choices > 0, 0.0, noise))
        scores[marginal] = [
            good.pdf(c, active if marginal else None) / bad.pdf(c, active if marginal else None)
            for c in (cand, shuffled)
        ]
    # the whole-vector score moves with them
    assert not np.allclose(scores[False][0], scores[False][1])
    plain, moved = scores[True]
    assert np.allclose(plain, moved, rtol=1e-12)


def test_all_budgets_counts_each_config_once_at_its_largest_budget() -> None:
    space = nas_space()
    gen = ConfigGenerator(space, 3, knobs(all_budgets=True), seed=0)
    rng = np.random.default_rng(5)
    configs = [space.encode(space.sample(rng)) for _ in range(30)]
    for i, v in enumerate(configs):
        assert gen.observe(0, v, 1.0 + i)
    for i, v in enumerate(configs[:10]):  # promoted: seen again at rung 1, nothing dropped
        assert gen.observe(1, v, 0.5 + i if i != 3 else math.inf)
    assert gen.observe(2, configs[0], 0.1)
    assert gen._visible == 30 and [o.n for o in gen.obs] == [30, 10, 1]
    rungs, rows = gen._pooled_order()
    # rung 2 first, then rung 1's finite losses in order, rung 0's unpromoted, then the failure
    assert list(zip(rungs.tolist(), rows.tolist(), strict=True)) == [
        (2, 0), *[(1, i) for i in (1, 2, 4, 5, 6, 7, 8, 9)],
        *[(0, i) for i in range(10, 30)], (1, 3),
    ]  # fmt: skip
    assert gen._source() == POOLED and gen.model_rung() == 2
    # a lower budget after a larger one (a warm start's order) is stored but hidden
    assert gen.observe(0, configs[0], 0.0)
    assert gen._visible == 30 and gen.obs[0].hidden[30]


def loss_of(config: dict[str, Any], budget: float) -> float:
    """Deterministic: a failure (NaN) for some momenta, else better with budget and depth."""
    if config.get("momentum", 0.0) > 0.9:
        return math.nan
    return float(config["lr"]) / budget + 0.1 * (3 - config["n_stages"]) + config.get("shake", 0)


def drive(opt: BOHB, n: int) -> list[tuple[dict[str, Any], bool]]:
    out = []
    for _ in range(n):
        s = opt.ask()
        assert s is not None
        out.append((s.config, s.model_based))
        opt.tell(s.trial_id, loss_of(s.config, s.budget))
    return out


def test_both_knobs_resume_exactly_from_a_state_and_the_state_records_them() -> None:
    space = nas_space()
    kw: dict[str, Any] = {"seed": 4, "all_budgets": True, "marginal": True}
    straight = BOHB(space, 1, 9, **kw)
    expected = drive(straight, 150)
    assert straight.summary()["model_budget"] == 9.0  # the model holds the largest budget's
    assert sum(picked for _, picked in expected[70:]) > 20  # the resumed part uses the model
    half = BOHB(space, 1, 9, **kw)
    first = drive(half, 70)
    state = half.state_dict()
    assert state["args"]["all_budgets"] is True and state["args"]["marginal"] is True
    restored = BOHB.from_state_dict(state)
    assert first + drive(restored, 80) == expected
    # a state written before the knobs existed restores without them
    old = straight.state_dict()
    del old["args"]["all_budgets"], old["args"]["marginal"]
    assert not BOHB.from_state_dict(old).knobs.all_budgets
    assert not BOHB.from_state_dict(old).knobs.marginal
