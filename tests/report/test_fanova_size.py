"""fANOVA at size: the prefix-sum decomposition equals the previous dense one; below
EXACT_MAX_CONFIGS the report is exact, above it the sampled pairwise importances stay within a
stated tolerance of exact on planted data, and the page and --json say which method was used."""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from controller.report import fanova
from controller.report.command import main
from controller.report.demo import write_demo_sweep
from controller.report.fanova import (
    N_TREES,
    SAMPLED_ROWS,
    BudgetImportance,
    _Tree,
    decompose,
    encode,
    infer_params,
)
from controller.report.parallel import parallel_map
from trainer.store import FileStore

# |sampled - exact| of every pairwise importance on the planted problem below (measured: < 0.001)
SAMPLED_TOLERANCE = 0.005


class _DenseTree:
    """The previous implementation (node-by-node leaf boxes, dense cells x leaves membership
    matrices), kept here as the reference the fast one must reproduce."""

    def __init__(self, tree: Any, lo: np.ndarray, hi: np.ndarray) -> None:
        t = tree.tree_
        n = t.node_count
        lower, upper = np.tile(lo, (n, 1)), np.tile(hi, (n, 1))
        left, right, feature, threshold = t.children_left, t.children_right, t.feature, t.threshold
        for node in range(n):
            lc = left[node]
            if lc < 0:
                continue
            rc, f, thr = right[node], feature[node], threshold[node]
            lower[lc], upper[lc] = lower[node], upper[node]
            upper[lc, f] = thr
            lower[rc], upper[rc] = lower[node], upper[node]
            lower[rc, f] = thr
        leaves = left < 0
        self.lower, self.upper, self.value = lower[leaves], upper[leaves], t.value[leaves, 0, 0]
        self.lo, self.width = lo, hi - lo
        self.frac = (self.upper - self.lower) / self.width
        self.weight = np.prod(self.frac, axis=1)
        self.mean = float(self.weight @ self.value)
        self.var = float(self.weight @ (self.value - self.mean) ** 2)

    def _cells(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        cuts = np.unique(np.concatenate([self.lower[:, i], self.upper[:, i]]))
        mids = (cuts[:-1] + cuts[1:]) / 2
        lower, upper = self.lower[:, i][None, :], self.upper[:, i][None, :]
        member = ((lower < mids[:, None]) & (mids[:, None] < upper)).astype(float)
        return np.diff(cuts) / self.width[i], member

    def _per_leaf(self, *dims: int) -> np.ndarray:
        denom = np.prod(self.frac[:, list(dims)], axis=1)
        return np.divide(self.value * self.weight, denom, out=np.zeros_like(denom), where=denom > 0)

    def main_effect(self, i: int) -> float:
        p, member = self._cells(i)
        return float(p @ (member @ self._per_leaf(i) - self.mean) ** 2)

    def pair_effect(self, i: int, j: int) -> float:
        p, mi = self._cells(i)
        q, mj = self._cells(j)
        return float(p @ ((mi * self._per_leaf(i, j)) @ mj.T - self.mean) ** 2 @ q)


def _planted(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """``a`` explains most of the variance (a bowl), ``b`` x ``c`` a small interaction, ``u``
    nothing; a little noise."""
    rng = np.random.default_rng(seed)
    configs: list[dict[str, Any]] = [
        {k: float(rng.uniform()) for k in ("a", "b", "c", "u")} for _ in range(n)
    ]
    y = np.array([(c["a"] - 0.3) ** 2 + 0.3 * (c["b"] - 0.5) * (c["c"] - 0.5) for c in configs])
    return configs, y + rng.normal(0, 0.002, n)


def _forest(x: np.ndarray, y: np.ndarray, trees: int, seed: int = 0) -> RandomForestRegressor:
    """The forest decompose() fits (same settings and seed)."""
    return RandomForestRegressor(
        n_estimators=trees, max_features=0.7, min_samples_leaf=1, random_state=seed, n_jobs=1
    ).fit(x, y)


def test_prefix_sums_equal_the_previous_dense_decomposition() -> None:
    configs, y = _planted(1500, seed=4)
    params = infer_params(configs)
    x = encode(configs, params)
    lo, hi = np.array([p.lo for p in params]), np.array([p.hi for p in params])
    for est in _forest(x, y, trees=4).estimators_:
        new, old = _Tree(est, lo, hi), _DenseTree(est, lo, hi)
        assert np.array_equal(new.lower, old.lower) and np.array_equal(new.upper, old.upper)
        assert new.var == old.var
        for i in range(len(params)):
            assert new.main_effect(i) == pytest.approx(old.main_effect(i), rel=1e-12, abs=1e-15)
            xs = np.linspace(lo[i], hi[i], 37)
            assert np.array_equal(new.marginal_at(i, xs), _dense_at(old, i, xs))
        for i, j in combinations(range(len(params)), 2):
            assert new.pair_effect(i, j) == pytest.approx(old.pair_effect(i, j), rel=1e-12)
            # the interaction by rows (what sampling draws from), every row taken: exact
            exact = new.pair_effect(i, j) - new.main_effect(i) - new.main_effect(j)
            whole = new.pair_interaction_sampled(i, j, np.random.default_rng(0), rows=10**6)
            assert whole == pytest.approx(exact, rel=1e-9, abs=1e-15 * new.var)


def _dense_at(t: _DenseTree, i: int, xs: np.ndarray) -> np.ndarray:
    xs = np.maximum(xs, np.nextafter(t.lo[i], np.inf))
    inside = (t.lower[:, i][None, :] < xs[:, None]) & (xs[:, None] <= t.upper[:, i][None, :])
    return inside @ t._per_leaf(i)


def test_below_the_threshold_importances_are_exact_and_as_before() -> None:
    configs, y = _planted(400, seed=5)
    params = infer_params(configs)
    x = encode(configs, params)
    assert len(y) <= fanova.EXACT_MAX_CONFIGS
    got = decompose(x, y, params, budget=1.0)
    assert got.method == "exact" and got.sampled_rows is None
    assert all(p.se == 0.0 for p in got.pairwise)
    # the previous implementation on the same forest
    lo, hi = np.array([p.lo for p in params]), np.array([p.hi for p in params])
    trees = [_DenseTree(e, lo, hi) for e in _forest(x, y, trees=N_TREES).estimators_]
    d = len(params)
    main = np.array([[t.main_effect(i) / t.var for i in range(d)] for t in trees])
    names = [p.name for p in params]
    for imp in got.individual:
        k = names.index(imp.name)
        assert imp.fraction == pytest.approx(main[:, k].mean(), rel=1e-12, abs=1e-15)
        assert imp.std == pytest.approx(main[:, k].std(), rel=1e-9, abs=1e-15)
    for pair in got.pairwise:
        i, j = names.index(pair.names[0]), names.index(pair.names[1])
        fr = [
            max(0.0, t.pair_effect(i, j) / t.var - main[k, i] - main[k, j])
            for k, t in enumerate(trees)
        ]
        assert pair.fraction == pytest.approx(float(np.mean(fr)), rel=1e-9, abs=1e-12)


def test_above_the_threshold_sampled_pairs_are_within_tolerance_of_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configs, y = _planted(3000, seed=6)
    params = infer_params(configs)
    x = encode(configs, params)
    exact = decompose(x, y, params, budget=1.0, method="exact")
    monkeypatch.setattr(fanova, "EXACT_MAX_CONFIGS", 1000)  # "auto" must switch by itself
    sampled = decompose(x, y, params, budget=1.0)
    assert exact.method == "exact" and sampled.method == "sampled"
    assert sampled.sampled_rows == SAMPLED_ROWS
    # the trees have more cells than rows drawn, so sampling really happened
    lo, hi = np.array([p.lo for p in params]), np.array([p.hi for p in params])
    tree = _Tree(_forest(x, y, trees=1).estimators_[0], lo, hi)
    assert max(len(tree.cells(i).p) for i in range(len(params))) > 2 * SAMPLED_ROWS
    # main effects and marginals are exact either way
    assert sampled.individual == exact.individual
    assert sampled.marginals == exact.marginals
    assert sampled.individual[0].name == "a" and sampled.individual[0].fraction > 0.9
    by_names = {p.names: p for p in exact.pairwise}
    assert {p.names for p in sampled.pairwise} == set(by_names)
    for pair in sampled.pairwise:
        truth = by_names[pair.names].fraction
        assert abs(pair.fraction - truth) <= SAMPLED_TOLERANCE, pair
        assert 0.0 < pair.se <= 0.01  # its stated error, small, and never claimed to be 0
        assert abs(pair.fraction - truth) <= 3 * pair.se + 1e-4, pair
    # the planted interaction is the largest pair, sampled or not
    assert set(sampled.pairwise[0].names) == set(exact.pairwise[0].names) == {"b", "c"}


def test_sampled_estimate_is_unbiased_for_one_tree() -> None:
    configs, y = _planted(2000, seed=7)
    params = infer_params(configs)
    x = encode(configs, params)
    lo, hi = np.array([p.lo for p in params]), np.array([p.hi for p in params])
    tree = _Tree(_forest(x, y, trees=1).estimators_[0], lo, hi)
    b, c = 1, 2  # params are sorted by name: a, b, c, u
    exact = tree.pair_effect(b, c) - tree.main_effect(b) - tree.main_effect(c)
    rng = np.random.default_rng(1)
    draws = np.array([tree.pair_interaction_sampled(b, c, rng, rows=32) for _ in range(300)])
    assert draws.std() > 0  # sampled, not the whole sum
    assert abs(draws.mean() - exact) <= 4 * draws.std() / np.sqrt(len(draws))


def _with_importance(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in summary["importance"] if i["note"] is None]


def test_page_and_json_say_exact_below_the_threshold(tmp_path: Path) -> None:
    demo = write_demo_sweep(FileStore(tmp_path / "store"), sweep="small", iterations=4)
    summary, page = _report(demo.url, tmp_path / "out")
    budgets = _with_importance(summary)
    assert budgets and all(b["method"] == "exact" and b["sampled_rows"] is None for b in budgets)
    assert all(p["se"] == 0.0 for b in budgets for p in b["pairwise"])
    assert page.count("Method: <b>exact</b>") == len(budgets)
    assert "sampled" not in re.sub(r"<p>Fraction of the variance.*?</p>", "", page)


def test_page_and_json_say_sampled_above_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small sweep, with a small threshold and few rows so that sampling happens
    monkeypatch.setattr(fanova, "EXACT_MAX_CONFIGS", 40)
    monkeypatch.setattr(fanova, "SAMPLED_ROWS", 8)
    demo = write_demo_sweep(FileStore(tmp_path / "store"), sweep="big", iterations=4)
    summary, page = _report(demo.url, tmp_path / "out")
    budgets = _with_importance(summary)
    big = [b for b in budgets if b["n"] > 40]
    small = [b for b in budgets if b["n"] <= 40]
    assert big and small
    assert all(b["method"] == "sampled" and b["sampled_rows"] == 8 for b in big)
    assert all(b["method"] == "exact" for b in small)
    assert all(p["se"] > 0 for b in big for p in b["pairwise"])
    for b in big:
        section = page.split(f"<h3>Budget {b['budget']:g} ")[1].split("<h3>")[0]
        worst = max(p["se"] for p in b["pairwise"])
        assert f"pairwise importances <b>sampled</b> ({b['n']} configs &gt; 40)" in section
        assert "8 cells per tree and pair" in section
        assert f"at most <b>{_se(worst)}</b>" in section
        assert section.count("<th>± s.e. vs exact</th>") == 1
        for p in b["pairwise"]:
            assert f"<td>{_se(p['se'])}</td>" in section
    assert page.count("Method: <b>exact</b>") == len(small)


def _se(se: float) -> str:
    return f"{se:.4f}" if se >= 0.5e-4 else "&lt; 0.0001"


def _report(url: str, out: Path) -> tuple[dict[str, Any], str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([url, "--out", str(out), "--json"]) == 0
    return json.loads(stdout.getvalue()), (out / "index.html").read_text()


def test_parallel_map_hands_items_to_the_children_without_pickling() -> None:
    locks = [threading.Lock() for _ in range(3)]  # a lock cannot be pickled

    def locked(lock: threading.Lock) -> int:  # a closure cannot be pickled either
        return locks.index(lock) * 10 + int(lock.locked())

    assert parallel_map(locked, locks, workers=2) == [0, 10, 20]


def test_budget_importance_defaults_read_old_summaries() -> None:
    old = BudgetImportance.model_validate({"budget": 1.0, "n": 20})
    assert old.method == "exact" and old.sampled_rows is None
