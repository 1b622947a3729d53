"""fANOVA decomposition: exact against brute force on the tree's own cells, and on planted data."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeRegressor

from controller.report.fanova import (
    UNSET,
    _Tree,
    decompose,
    encode,
    importance_by_budget,
    infer_params,
    space_hints,
)


def _brute_force(tree: DecisionTreeRegressor, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    """Variance components from predictions at the midpoint of every cell of the tree's cut grid."""
    t = tree.tree_
    d = len(lo)
    mids, widths = [], []
    for i in range(d):
        cuts = np.unique(np.concatenate([[lo[i], hi[i]], t.threshold[t.feature == i]]))
        mids.append((cuts[:-1] + cuts[1:]) / 2)
        widths.append(np.diff(cuts) / (hi[i] - lo[i]))
    grid = np.array(list(itertools.product(*mids)))
    w = np.array([np.prod(c) for c in itertools.product(*widths)])
    y = tree.predict(grid).reshape([len(m) for m in mids])
    w = w.reshape(y.shape)
    mean = float((w * y).sum())
    out = {"var": float((w * (y - mean) ** 2).sum())}
    for i in range(d):
        others = tuple(k for k in range(d) if k != i)
        marg = (w * y).sum(axis=others) / w.sum(axis=others)
        out[f"{i}"] = float((widths[i] * (marg - mean) ** 2).sum())
    for i, j in itertools.combinations(range(d), 2):
        others = tuple(k for k in range(d) if k not in (i, j))
        marg = (w * y).sum(axis=others) / w.sum(axis=others)
        out[f"{i},{j}"] = float((np.outer(widths[i], widths[j]) * (marg - mean) ** 2).sum())
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(2, 3), n=st.integers(10, 60))
def test_tree_decomposition_is_exact(seed: int, d: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = np.zeros(d), np.array([1.0, 5.0, 2.0][:d])
    x = rng.uniform(lo, hi, size=(n, d))
    y = np.sin(3 * x[:, 0]) + x[:, 1] * x[:, -1] + rng.normal(0, 0.1, n)
    tree = DecisionTreeRegressor(max_leaf_nodes=12, random_state=seed).fit(x, y)
    ours = _Tree(tree, lo, hi)
    truth = _brute_force(tree, lo, hi)
    assert ours.var == pytest.approx(truth["var"], rel=1e-9, abs=1e-12)
    for i in range(d):
        assert ours.main_effect(i) == pytest.approx(truth[f"{i}"], rel=1e-9, abs=1e-12)
    for i, j in itertools.combinations(range(d), 2):
        assert ours.pair_effect(i, j) == pytest.approx(truth[f"{i},{j}"], rel=1e-9, abs=1e-12)
    # main effects, and each pair's total, never exceed the whole variance
    assert sum(ours.main_effect(i) for i in range(d)) <= ours.var * (1 + 1e-9)


def test_single_relevant_parameter_explains_almost_everything() -> None:
    rng = np.random.default_rng(1)
    configs: list[dict[str, Any]] = [
        {"a": float(rng.uniform()), "b": float(rng.uniform()), "c": str(rng.choice(["x", "y"]))}
        for _ in range(200)
    ]
    losses = [(c["a"] - 0.3) ** 2 for c in configs]
    (res,) = importance_by_budget({9.0: list(zip(configs, losses, strict=True))})
    assert res.individual[0].name == "a"
    assert res.individual[0].fraction > 0.9
    assert all(p.fraction < 0.05 for p in res.pairwise)
    assert res.marginals[0].name == "a"
    best = res.marginals[0].x[int(np.argmin(res.marginals[0].mean))]
    assert abs(best - 0.3) < 0.1  # the marginal's minimum is where the planted bowl is


def test_categorical_effect_and_labels() -> None:
    rng = np.random.default_rng(2)
    configs = [
        {"opt": str(rng.choice(["adam", "sgd", "rms"])), "u": float(rng.uniform())}
        for _ in range(150)
    ]
    losses = [1.0 if c["opt"] == "sgd" else 0.2 for c in configs]
    (res,) = importance_by_budget({1.0: list(zip(configs, losses, strict=True))})
    assert res.individual[0].name == "opt" and res.individual[0].fraction > 0.95
    m = res.marginals[0]
    assert m.kind == "categorical" and m.labels == ["adam", "rms", "sgd"]
    assert m.mean[2] == pytest.approx(1.0, abs=0.05) and m.mean[0] == pytest.approx(0.2, abs=0.05)


def test_parameter_encoding() -> None:
    rng = np.random.default_rng(3)
    configs = [
        {
            "lr": float(10 ** rng.uniform(-5, -1)),  # log-uniform: log scale
            "dropout": float(rng.uniform(0, 0.8)),  # uniform, smallest draw tiny: linear
            "flag": bool(rng.uniform() < 0.5),  # bool: categorical
            "const": 3,  # never varies: left out
            **({"momentum": float(rng.uniform(0.5, 0.99))} if i % 3 else {}),  # conditional
        }
        for i in range(300)
    ]
    configs[0]["dropout"] = 1e-4
    params = {p.name: p for p in infer_params(configs)}
    assert set(params) == {"lr", "dropout", "flag", "momentum"}
    assert params["lr"].log and not params["dropout"].log
    assert params["flag"].kind == "categorical" and params["flag"].categories == ["False", "True"]
    mom = params["momentum"]
    assert mom.unset is not None and mom.lo < mom.unset < mom.observed_lo
    x = encode(configs, list(params.values()))
    names = list(params)
    assert x[0, names.index("momentum")] == mom.unset
    assert math.log10(configs[1]["lr"]) == x[1, names.index("lr")]
    assert UNSET not in params["flag"].categories


def test_not_enough_data_and_constant_losses() -> None:
    configs = [{"a": float(i)} for i in range(5)]
    params = infer_params(configs)
    few = decompose(encode(configs, params), np.arange(5.0), params, budget=3.0)
    assert few.note is not None and "not enough data" in few.note and not few.individual
    many = [{"a": float(i)} for i in range(20)]
    flat = decompose(encode(many, params), np.ones(20), params, budget=3.0)
    assert flat.note == "all losses are equal"


def test_space_from_spec_yaml_sets_bounds_scale_and_choices() -> None:
    spec = {
        "space": {
            "parameters": [
                {"name": "lr", "type": "float", "low": 1e-5, "high": 1.0, "log": True},
                {"name": "m", "type": "float", "low": 0.0, "high": 1.0},
                {"name": "bs", "type": "categorical", "choices": [32, 64, 128]},
                {"name": "junk"},  # no bounds: ignored
                "not a parameter",
            ]
        }
    }
    hints = space_hints(spec)
    assert hints["junk"].low is None and space_hints([1]) == {} and space_hints(None) == {}
    # observed values cover little of the space, and narrowly: the space still sets the measure
    configs = [{"lr": 10 ** -(2 + i / 100), "m": 0.4 + i / 1000, "bs": 64} for i in range(50)]
    params = {p.name: p for p in infer_params(configs, hints)}
    assert params["lr"].log and (params["lr"].lo, params["lr"].hi) == (-5.0, 0.0)
    assert (params["m"].lo, params["m"].hi) == (0.0, 1.0) and not params["m"].log
    assert params["bs"].kind == "categorical" and params["bs"].categories == ["128", "32", "64"]
    without = {p.name for p in infer_params(configs)}
    assert "bs" not in without  # a constant is dropped when nothing says it could vary
