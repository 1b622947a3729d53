"""Functional ANOVA (Hutter, Hoos & Leyton-Brown, ICML 2014) over a scikit-learn random forest.

Our own decomposition (the ``fanova`` package needs pyrfr, which does not build here without
SWIG). Each regression tree is a piecewise-constant function over axis-aligned leaf boxes, so its
marginals are exact: under the uniform measure on the (encoded) configuration space, the marginal
of parameter i at x is  a_i(x) = Σ_{leaves L ∋ x} v_L · w_L / f_{L,i},  where w_L is the leaf's
volume fraction and f_{L,i} its width fraction along i. The variance of a_i over the cut points of
i, divided by the tree's total variance, is i's individual importance; a pair's importance is the
variance of its 2-D marginal minus both individual ones. Fractions are averaged over trees (with
their standard deviation), as the fanova package reports them.

Encoding: the space's bounds, log scale and choices where the sweep's spec.yaml gives them; else
numeric parameters on their observed range (log10 when they look log-uniform, see
``_looks_log_scaled``); categorical (strings, bools) as codes 0..k-1 on [-0.5, k-0.5] so every
category has equal measure
and the forest's splits (midpoints) fall between categories; an unset (conditional) numeric
parameter gets its own slot just below its range.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from sklearn.ensemble import RandomForestRegressor

from controller.report.load import is_number
from controller.report.parallel import parallel_map

MIN_POINTS = 10  # fewer configs on a budget → "not enough data"
N_TREES = 64
TOP_FOR_PAIRS = 5  # pairwise importance for the top-5 parameters (10 pairs)
N_MARGINALS = 3
UNSET = "(unset)"


class ParamSpec(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    log: bool = False
    categories: list[str] = []
    lo: float  # domain, in encoded units
    hi: float
    observed_lo: float  # smallest observed (encoded) value; above the unset slot
    unset: float | None = None  # encoded value of "not set" (numeric conditional parameters)


class Importance(BaseModel):
    name: str
    fraction: float  # of the forest's variance, mean over trees
    std: float


class PairImportance(BaseModel):
    names: tuple[str, str]
    fraction: float
    std: float


class Marginal(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    log: bool
    x: list[float]  # decoded parameter values (numeric) or category codes
    labels: list[str]  # category names (categorical), else empty
    mean: list[float]  # predicted loss, averaged over trees
    std: list[float]


class BudgetImportance(BaseModel):
    budget: float
    n: int
    note: str | None = None  # why nothing was computed
    individual: list[Importance] = []  # descending
    pairwise: list[PairImportance] = []  # descending
    marginals: list[Marginal] = []  # the top N_MARGINALS parameters


class ParamHint(BaseModel):
    """What the sweep's spec.yaml says of one parameter (its space; read defensively)."""

    log: bool | None = None
    low: float | None = None
    high: float | None = None
    choices: list[str] | None = None


def space_hints(spec: Any) -> dict[str, ParamHint]:
    """``space.parameters`` of a loaded spec.yaml → hints by name; anything odd is ignored."""
    space = spec.get("space") if isinstance(spec, dict) else None
    params = space.get("parameters") if isinstance(space, dict) else None
    hints: dict[str, ParamHint] = {}
    for p in params if isinstance(params, list) else []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        low, high, choices = p.get("low"), p.get("high"), p.get("choices")
        bounds = (float(low), float(high)) if is_number(low) and is_number(high) else None
        numeric = bounds is not None and bounds[0] < bounds[1]
        hints[p["name"]] = ParamHint(
            log=p["log"] if isinstance(p.get("log"), bool) else None,
            low=bounds[0] if bounds and numeric else None,
            high=bounds[1] if bounds and numeric else None,
            choices=[str(c) for c in choices] if isinstance(choices, list) else None,
        )
    return hints


def _looks_log_scaled(nums: np.ndarray) -> bool:
    """Positive, spanning ≥ 2 decades, and spread in log space (≥ 25 % below the geometric
    midpoint): true for log-uniform samples (≈ 50 %), false for e.g. a uniform dropout in
    [0, 0.8] whose smallest draw happens to be tiny (≈ 5 %)."""
    lo, hi = float(nums.min()), float(nums.max())
    if lo <= 0 or hi / lo < 100.0:
        return False
    return bool(np.mean(nums < math.sqrt(lo * hi)) >= 0.25)


def infer_params(
    configs: list[dict[str, Any]], hints: dict[str, ParamHint] | None = None
) -> list[ParamSpec]:
    """Parameter encodings: the space's bounds, log scale and choices where spec.yaml gives them
    (fANOVA's measure is uniform over the space), else inferred from the configs themselves.
    Parameters that never vary (and have no range in the space) are left out."""
    hints = hints or {}
    names = sorted({name for c in configs for name in c})
    specs: list[ParamSpec] = []
    for name in names:
        hint = hints.get(name, ParamHint())
        values = [c.get(name) for c in configs]
        present = [v for v in values if v is not None]
        missing = len(present) < len(values)
        if present and all(is_number(v) for v in present) and hint.choices is None:
            nums = np.array(present, dtype=float)
            log = hint.log if hint.log is not None else _looks_log_scaled(nums)
            log = log and bool(nums.min() > 0) and (hint.low is None or hint.low > 0)
            bounds = [*nums, *(b for b in (hint.low, hint.high) if b is not None)]
            enc = np.log10(bounds) if log else np.array(bounds)
            lo, hi = float(enc.min()), float(enc.max())
            if hi == lo and not missing:
                continue
            width = hi - lo if hi > lo else 1.0
            unset = lo - 0.1 * width if missing else None
            dom_lo = lo - 0.2 * width if missing else lo
            dom_hi = hi if hi > lo else lo + width
            specs.append(
                ParamSpec(
                    name=name,
                    kind="numeric",
                    log=log,
                    lo=dom_lo,
                    hi=dom_hi,
                    observed_lo=lo,
                    unset=unset,
                )
            )
        else:
            seen = {UNSET if v is None else str(v) for v in values}
            cats = sorted(seen | set(hint.choices or []))
            if len(cats) < 2:
                continue
            specs.append(
                ParamSpec(
                    name=name,
                    kind="categorical",
                    categories=cats,
                    lo=-0.5,
                    hi=len(cats) - 0.5,
                    observed_lo=0.0,
                )
            )
    return specs


def encode(configs: list[dict[str, Any]], params: list[ParamSpec]) -> np.ndarray:
    x = np.empty((len(configs), len(params)))
    for j, p in enumerate(params):
        for i, c in enumerate(configs):
            v = c.get(p.name)
            if p.kind == "categorical":
                x[i, j] = p.categories.index(UNSET if v is None else str(v))
            elif v is None or not is_number(v):
                x[i, j] = p.unset if p.unset is not None else (p.lo + p.hi) / 2
            else:
                x[i, j] = math.log10(v) if p.log else float(v)
    return x


def _leaf_boxes(tree: Any, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """(lower, upper, value) of every leaf; sklearn numbers a child after its parent."""
    t = tree.tree_
    n = t.node_count
    lower = np.tile(lo, (n, 1))
    upper = np.tile(hi, (n, 1))
    left, right, feature, threshold = t.children_left, t.children_right, t.feature, t.threshold
    for node in range(n):
        lc = left[node]
        if lc < 0:
            continue
        rc, f, thr = right[node], feature[node], threshold[node]
        lower[lc] = lower[node]
        upper[lc] = upper[node]
        upper[lc, f] = thr
        lower[rc] = lower[node]
        upper[rc] = upper[node]
        lower[rc, f] = thr
    leaves = left < 0
    return lower[leaves], upper[leaves], t.value[leaves, 0, 0]


class _Tree:
    """One tree's leaf boxes and the quantities every marginal needs."""

    def __init__(self, tree: Any, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lower, self.upper, self.value = _leaf_boxes(tree, lo, hi)
        self.lo, self.width = lo, hi - lo
        self.frac = (self.upper - self.lower) / self.width  # (L, d)
        self.weight = np.prod(self.frac, axis=1)
        self.mean = float(self.weight @ self.value)
        self.var = float(self.weight @ (self.value - self.mean) ** 2)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _cells(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Width fractions of the cells cut along i, and leaf membership (K, L) as 0/1 floats.

        Cached: the pairwise effects of the top parameters reuse every parameter's cells."""
        if i not in self._cache:
            cuts = np.unique(np.concatenate([self.lower[:, i], self.upper[:, i]]))
            mids = (cuts[:-1] + cuts[1:]) / 2
            lower, upper = self.lower[:, i][None, :], self.upper[:, i][None, :]
            member = ((lower < mids[:, None]) & (mids[:, None] < upper)).astype(float)
            self._cache[i] = (np.diff(cuts) / self.width[i], member)
        return self._cache[i]

    def _per_leaf(self, *dims: int) -> np.ndarray:
        denom = np.prod(self.frac[:, list(dims)], axis=1)
        return np.divide(self.value * self.weight, denom, out=np.zeros_like(denom), where=denom > 0)

    def main_effect(self, i: int) -> float:
        p, member = self._cells(i)
        a = member @ self._per_leaf(i)
        return float(p @ (a - self.mean) ** 2)

    def pair_effect(self, i: int, j: int) -> float:
        """Variance of the 2-D marginal of (i, j), main effects included."""
        p, mi = self._cells(i)
        q, mj = self._cells(j)
        a = (mi * self._per_leaf(i, j)) @ mj.T
        return float(p @ (a - self.mean) ** 2 @ q)

    def marginal_at(self, i: int, xs: np.ndarray) -> np.ndarray:
        # a leaf holds (lower, upper] along i (sklearn sends x <= threshold left): move the
        # domain's lower bound itself just inside the first cell
        xs = np.maximum(xs, np.nextafter(self.lo[i], np.inf))
        inside = (self.lower[:, i][None, :] < xs[:, None]) & (
            xs[:, None] <= self.upper[:, i][None, :]
        )
        return inside @ self._per_leaf(i)


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.array(values)
    return float(arr.mean()), float(arr.std())


def decompose(
    x: np.ndarray, y: np.ndarray, params: list[ParamSpec], budget: float, seed: int = 0
) -> BudgetImportance:
    """Fit the forest to (encoded config, loss) at one budget and decompose its variance."""
    n = len(y)
    if n < MIN_POINTS:
        return BudgetImportance(
            budget=budget, n=n, note=f"not enough data ({n} < {MIN_POINTS} configs)"
        )
    if not params:
        return BudgetImportance(budget=budget, n=n, note="no parameter varies")
    if float(np.ptp(y)) == 0.0:
        return BudgetImportance(budget=budget, n=n, note="all losses are equal")
    lo = np.array([p.lo for p in params])
    hi = np.array([p.hi for p in params])
    forest = RandomForestRegressor(
        n_estimators=N_TREES,
        max_features=0.7 if len(params) > 2 else 1.0,  # the fanova package's default ratio
        min_samples_leaf=1,
        bootstrap=True,
        random_state=seed,
        n_jobs=1,
    ).fit(x, y)
    trees = [t for t in (_Tree(e, lo, hi) for e in forest.estimators_) if t.var > 0]
    if not trees:
        return BudgetImportance(budget=budget, n=n, note="the forest predicts a constant loss")
    d = len(params)
    main = np.array([[t.main_effect(i) / t.var for i in range(d)] for t in trees])  # (T, d)
    order = np.argsort(-main.mean(axis=0), kind="stable")
    individual = [
        Importance(
            name=params[i].name, fraction=float(main[:, i].mean()), std=float(main[:, i].std())
        )
        for i in order
    ]
    pairwise: list[PairImportance] = []
    for i, j in combinations(sorted(order[:TOP_FOR_PAIRS].tolist()), 2):
        fr = [
            max(0.0, t.pair_effect(i, j) / t.var - main[k, i] - main[k, j])
            for k, t in enumerate(trees)
        ]
        mean, std = _stats(fr)
        pairwise.append(
            PairImportance(names=(params[i].name, params[j].name), fraction=mean, std=std)
        )
    pairwise.sort(key=lambda pi: -pi.fraction)
    marginals = [_marginal(trees, i, params[i]) for i in order[:N_MARGINALS]]
    return BudgetImportance(
        budget=budget, n=n, individual=individual, pairwise=pairwise, marginals=marginals
    )


def _marginal(trees: list[_Tree], i: int, p: ParamSpec) -> Marginal:
    if p.kind == "categorical":
        xs = np.arange(len(p.categories), dtype=float)
    else:
        xs = np.linspace(p.observed_lo, p.hi, 60)
    curves = np.array([t.marginal_at(i, xs) for t in trees])
    shown = xs if p.kind == "categorical" or not p.log else 10.0**xs
    return Marginal(
        name=p.name,
        kind=p.kind,
        log=p.log,
        x=shown.tolist(),
        labels=p.categories if p.kind == "categorical" else [],
        mean=curves.mean(axis=0).tolist(),
        std=curves.std(axis=0).tolist(),
    )


def _decompose_task(
    task: tuple[np.ndarray, np.ndarray, list[ParamSpec], float, int],
) -> BudgetImportance:
    return decompose(*task)


def importance_by_budget(
    points: dict[float, list[tuple[dict[str, Any], float]]],
    seed: int = 0,
    workers: int | None = None,
    hints: dict[str, ParamHint] | None = None,
) -> list[BudgetImportance]:
    """fANOVA per budget (budgets in parallel processes); encodings are shared by all budgets."""
    params = infer_params([c for rows in points.values() for c, _ in rows], hints)
    tasks = []
    for budget in sorted(points):
        rows = points[budget]
        x = encode([c for c, _ in rows], params)
        y = np.array([loss for _, loss in rows], dtype=float)
        tasks.append((x, y, params, budget, seed))
    return parallel_map(_decompose_task, tasks, workers)
