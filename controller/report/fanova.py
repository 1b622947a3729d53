"""Functional ANOVA (Hutter, Hoos & Leyton-Brown, ICML 2014) over a scikit-learn random forest.

Our own decomposition (the ``fanova`` package needs pyrfr, which does not build here without
SWIG). Each regression tree is a piecewise-constant function over axis-aligned leaf boxes, so its
marginals are exact: under the uniform measure on the (encoded) configuration space, the marginal
of parameter i at x is  a_i(x) = Σ_{leaves L ∋ x} v_L · w_L / f_{L,i},  where w_L is the leaf's
volume fraction and f_{L,i} its width fraction along i. The variance of a_i over the cut points of
i, divided by the tree's total variance, is i's individual importance; a pair's importance is the
variance of its 2-D marginal minus both individual ones. Fractions are averaged over trees (with
their standard deviation), as the fanova package reports them.

Cost: every marginal is a prefix sum over the cells cut along its parameters (see ``_Tree``):
O(L log L) per tree and parameter for a main effect, O(K_i K_j + L) for a pair (L leaves, K_i cells
along i; both grow with the configs on the budget). Up to EXACT_MAX_CONFIGS configs everything is
exact; above it the pairwise importances are estimated from SAMPLED_ROWS stratified cells of the
finer parameter per tree and pair (O(SAMPLED_ROWS K_j + L)), each with a standard error against
the exact value; main effects and marginals stay exact at every size.

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
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel
from sklearn.ensemble import RandomForestRegressor

from controller.report.load import is_number
from controller.report.parallel import parallel_map

MIN_POINTS = 10  # fewer configs on a budget → "not enough data"
N_TREES = 64
TOP_FOR_PAIRS = 5  # pairwise importance for the top-5 parameters (10 pairs)
N_MARGINALS = 3
# Above this many configs on a budget, pairwise importances are sampled (see decompose): the exact
# 2-D marginal of a pair costs O(K_i K_j) per tree, and K (cells cut along a parameter) grows with
# the configs; main effects and marginals stay exact at every size (O(L log L) per tree).
EXACT_MAX_CONFIGS = 8_000
SAMPLED_ROWS = 128  # cells drawn per tree and pair along the finer parameter (1 per stratum)
UNSET = "(unset)"

Method = Literal["auto", "exact", "sampled"]


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
    se: float = 0.0  # standard error against the exact value (sampled method; 0 when exact)


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
    method: Literal["exact", "sampled"] = "exact"  # of the pairwise importances
    sampled_rows: int | None = None  # cells drawn per tree and pair (method "sampled")
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
    """(lower, upper, value) of every leaf, one tree level at a time (vectorised)."""
    t = tree.tree_
    n = t.node_count
    lower = np.empty((n, len(lo)))
    upper = np.empty((n, len(lo)))
    lower[0], upper[0] = lo, hi
    left, right, feature, threshold = t.children_left, t.children_right, t.feature, t.threshold
    level = np.array([0])
    while level.size:
        inner = level[left[level] >= 0]
        lc, rc, f, thr = left[inner], right[inner], feature[inner], threshold[inner]
        lower[lc] = lower[inner]
        upper[lc] = upper[inner]
        upper[lc, f] = thr
        lower[rc] = lower[inner]
        upper[rc] = upper[inner]
        lower[rc, f] = thr
        level = np.concatenate([lc, rc])
    leaves = left < 0
    return lower[leaves], upper[leaves], t.value[leaves, 0, 0]


class _Cells(NamedTuple):
    """The cells cut along one parameter: width fractions, each leaf's first and past-last cell
    (a leaf covers cells start..stop-1 along it), and the centred marginal a_i - mean per cell."""

    p: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    marginal: np.ndarray


class _Tree:
    """One tree's leaf boxes and the quantities every marginal needs.

    A leaf covers a contiguous run of the cells cut along any parameter, so a marginal (a sum of
    per-leaf terms over the leaves that contain a cell) is a prefix sum of +term at each leaf's
    first cell and -term past its last: O(L log L) for a main effect, O(K_i K_j + L) for a pair,
    instead of dense (cells x leaves) membership matrices. Per-leaf terms use the centred values
    v_L - mean, so the sums give a - mean directly (the leaves containing a cell along i tile
    the other parameters: their w_L / f_{L,i} add up to 1), which keeps the prefix sums small.
    """

    def __init__(self, tree: Any, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lower, self.upper, self.value = _leaf_boxes(tree, lo, hi)
        self.lo, self.width = lo, hi - lo
        self.frac = (self.upper - self.lower) / self.width  # (L, d)
        self.weight = np.prod(self.frac, axis=1)
        self.mean = float(self.weight @ self.value)
        self.var = float(self.weight @ (self.value - self.mean) ** 2)
        self._centred = (self.value - self.mean) * self.weight
        self._cache: dict[int, _Cells] = {}

    def _per_leaf(self, *dims: int, centred: bool = True) -> np.ndarray:
        """(v_L - mean) w_L / Π f_{L,dims}: a leaf's term in the centred marginal over dims."""
        denom = np.prod(self.frac[:, list(dims)], axis=1)
        num = self._centred if centred else self.value * self.weight
        return np.divide(num, denom, out=np.zeros_like(denom), where=denom > 0)

    def cells(self, i: int) -> _Cells:
        """Cached: pairs and marginals reuse every parameter's cells."""
        if i not in self._cache:
            cuts = np.unique(np.concatenate([self.lower[:, i], self.upper[:, i]]))
            start = np.searchsorted(cuts, self.lower[:, i])
            stop = np.searchsorted(cuts, self.upper[:, i])
            k = len(cuts) - 1
            v = self._per_leaf(i)
            delta = np.bincount(start, v, minlength=k + 1) - np.bincount(stop, v, minlength=k + 1)
            p = np.diff(cuts) / self.width[i]
            self._cache[i] = _Cells(p, start, stop, np.cumsum(delta[:k]))
        return self._cache[i]

    def main_effect(self, i: int) -> float:
        c = self.cells(i)
        return float(c.p @ c.marginal**2)

    def _pair_rows(self, i: int, j: int, rows: np.ndarray | None = None) -> np.ndarray:
        """The centred 2-D marginal A_ij - mean on cells ``rows`` (sorted; default: all) along
        i, every cell along j: a 2-D prefix sum of each leaf's term at its box's four corners,
        rows compressed to the ones asked for (a leaf counts in row k when start <= k < stop)."""
        ci, cj = self.cells(i), self.cells(j)
        if rows is None:
            first, past, n_rows = ci.start, ci.stop, len(ci.p)
        else:
            first, past, n_rows = (
                np.searchsorted(rows, ci.start),
                np.searchsorted(rows, ci.stop),
                len(rows),
            )
        cols = len(cj.p) + 1
        corners = np.concatenate(
            [
                first * cols + cj.start,
                first * cols + cj.stop,
                past * cols + cj.start,
                past * cols + cj.stop,
            ]
        )
        v = self._per_leaf(i, j)
        delta = np.bincount(corners, np.concatenate([v, -v, -v, v]), minlength=(n_rows + 1) * cols)
        a = delta.reshape(n_rows + 1, cols)[:n_rows, :-1]
        np.cumsum(a, axis=0, out=a)
        np.cumsum(a, axis=1, out=a)
        return a

    def pair_effect(self, i: int, j: int) -> float:
        """Variance of the 2-D marginal of (i, j), main effects included."""
        a = self._pair_rows(i, j)
        return float(np.einsum("k,kl,kl,l->", self.cells(i).p, a, a, self.cells(j).p))

    def pair_interaction_sampled(
        self, i: int, j: int, rng: np.random.Generator, rows: int
    ) -> float:
        """Unbiased estimate of the variance of the pure (i, j) interaction.

        The interaction g = A_ij - a_i - a_j + mean has variance Σ_k p_k h_k with
        h_k = Σ_l q_l g(k, l)². Along the parameter with more cells, ``rows`` cells k are drawn,
        one per stratum of equal width fraction (stratified sampling: the mean of h over the
        draws is unbiased); each h_k is exact along the other parameter. With no more cells than
        ``rows``, every cell is taken: the exact value.
        """
        if len(self.cells(i).p) < len(self.cells(j).p):
            i, j = j, i
        ci, cj = self.cells(i), self.cells(j)
        if len(ci.p) <= rows:
            g = self._pair_rows(i, j) - ci.marginal[:, None] - cj.marginal[None, :]
            return float(np.einsum("k,kl,kl,l->", ci.p, g, g, cj.p))
        u = (np.arange(rows) + rng.uniform(size=rows)) / rows  # sorted: one per stratum
        k = np.minimum(np.searchsorted(np.cumsum(ci.p), u, side="right"), len(ci.p) - 1)
        g = self._pair_rows(i, j, k) - ci.marginal[k][:, None] - cj.marginal[None, :]
        return float(np.einsum("kl,kl,l->k", g, g, cj.p).mean())

    def marginal_at(self, i: int, xs: np.ndarray) -> np.ndarray:
        # a leaf holds (lower, upper] along i (sklearn sends x <= threshold left): move the
        # domain's lower bound itself just inside the first cell
        xs = np.maximum(xs, np.nextafter(self.lo[i], np.inf))
        inside = (self.lower[:, i][None, :] < xs[:, None]) & (
            xs[:, None] <= self.upper[:, i][None, :]
        )
        return inside @ self._per_leaf(i, centred=False)


def decompose(
    x: np.ndarray,
    y: np.ndarray,
    params: list[ParamSpec],
    budget: float,
    seed: int = 0,
    method: Method = "auto",
) -> BudgetImportance:
    """Fit the forest to (encoded config, loss) at one budget and decompose its variance.

    ``method`` "auto": exact up to EXACT_MAX_CONFIGS configs, above it the pairwise importances
    are sampled (``_Tree.pair_interaction_sampled``); main effects and marginals are always exact.
    """
    n = len(y)
    if n < MIN_POINTS:
        return BudgetImportance(
            budget=budget, n=n, note=f"not enough data ({n} < {MIN_POINTS} configs)"
        )
    if not params:
        return BudgetImportance(budget=budget, n=n, note="no parameter varies")
    if float(np.ptp(y)) == 0.0:
        return BudgetImportance(budget=budget, n=n, note="all losses are equal")
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_CONFIGS else "sampled"
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
    rng = np.random.default_rng([seed, 1])
    pairwise: list[PairImportance] = []
    for i, j in combinations(sorted(order[:TOP_FOR_PAIRS].tolist()), 2):
        if method == "exact":
            fr = np.array(
                [
                    max(0.0, t.pair_effect(i, j) / t.var - main[k, i] - main[k, j])
                    for k, t in enumerate(trees)
                ]
            )
            se = 0.0
        else:
            fr = np.array(
                [t.pair_interaction_sampled(i, j, rng, SAMPLED_ROWS) / t.var for t in trees]
            )
            # the error is the mean of independent per-tree sampling errors; the spread of the
            # sampled per-tree values holds that noise on top of the trees' own spread, so
            # std / sqrt(trees) bounds the standard error from above (in expectation)
            se = float(fr.std(ddof=1)) / math.sqrt(len(trees)) if len(trees) > 1 else 0.0
        pairwise.append(
            PairImportance(
                names=(params[i].name, params[j].name),
                fraction=float(fr.mean()),
                std=float(fr.std()),
                se=se,
            )
        )
    pairwise.sort(key=lambda pi: -pi.fraction)
    marginals = [_marginal(trees, i, params[i]) for i in order[:N_MARGINALS]]
    return BudgetImportance(
        budget=budget,
        n=n,
        method=method,
        sampled_rows=SAMPLED_ROWS if method == "sampled" else None,
        individual=individual,
        pairwise=pairwise,
        marginals=marginals,
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
    task: tuple[np.ndarray, np.ndarray, list[ParamSpec], float, int, Method],
) -> BudgetImportance:
    return decompose(*task)


def importance_by_budget(
    points: dict[float, list[tuple[dict[str, Any], float]]],
    seed: int = 0,
    workers: int | None = None,
    hints: dict[str, ParamHint] | None = None,
    method: Method = "auto",
) -> list[BudgetImportance]:
    """fANOVA per budget (budgets in parallel processes); encodings are shared by all budgets."""
    params = infer_params([c for rows in points.values() for c, _ in rows], hints)
    tasks = []
    for budget in sorted(points):
        rows = points[budget]
        x = encode([c for c, _ in rows], params)
        y = np.array([loss for _, loss in rows], dtype=float)
        tasks.append((x, y, params, budget, seed, method))
    # biggest budgets first, so two workers finish together; results in budget order
    order = sorted(range(len(tasks)), key=lambda k: -len(tasks[k][1]))
    done = parallel_map(_decompose_task, [tasks[k] for k in order], workers)
    by_task = dict(zip(order, done, strict=True))
    return [by_task[k] for k in range(len(tasks))]
