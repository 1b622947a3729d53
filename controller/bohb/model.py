"""BOHB's config generator: observations per budget, KDE models, model-based proposals (spec §2).

Mirrors HpBandSter 0.7.4's ``config_generators/bohb.py``:
- one (good, bad) KDE pair per budget; proposals use the largest budget that has a model;
- results at a budget below the largest modelled budget are dropped (not stored);
- a model needs N >= N_min results at a budget, n_good = max(N_min, 15 % of N) and the
  disjoint bad slice ``idx[n_good : n_good + n_bad]``, each with more than d rows; with the
  default N_min = d + 1 the first model therefore appears at N = 2(d + 1);
- failed runs enter the model with loss +inf.

Fitting is lazy: a tell only appends the observation and marks the budget dirty; the KDEs are
refitted at the next model-based proposal that uses that budget. Whether a model *exists* depends
only on counts, so the drop rule above is unaffected. Imputation draws from a generator seeded by
(seed, rung, N), so a fit is a pure function of the data and a restored optimiser refits exactly.

Bounded model (``max_model_points``, docs/bohb.md deviation 15): while a budget holds at most that
many results its fit is exactly the above. Above it the split is still taken over all N results
(ranked by loss, ties by arrival), and each KDE is fitted on a uniform subsample of its set drawn
from the same (seed, rung, N) generator, so fitting and proposing cost O(bound), not O(N).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from scipy import special

from controller.bohb import kde
from controller.bohb.space import SearchSpace

log = logging.getLogger("kubohb.bohb")  # one event per line via controller.log's handler

POOLED = -1  # ConfigGenerator's model source when all_budgets: every rung's results
_FLOOR = 1e-32  # HpBandSter's floor on both densities in the acquisition g/l
DEFAULT_MAX_MODEL_POINTS = 1024  # docs/bohb.md deviation 15 (2,048 until 2026-12-03)

ModelName = Literal["faithful", "kubohb"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)


@dataclass(frozen=True)
class ModelDefaults:
    """The knobs a ``model`` sets; a knob given to ``BOHB`` wins over its default."""

    random_fraction: float = 1 / 3
    num_samples: int = 64
    bandwidth_factor: float = 3.0
    marginal: bool = False


def model_defaults(model: ModelName, space: SearchSpace) -> ModelDefaults:
    """The knobs' defaults that ``model`` sets for ``space`` (docs/bohb.md, "The model").

    faithful: HpBandSter 0.7.4's, a third of the configs sampled from the prior once a model
    exists, 64 candidates drawn with the bandwidths widened 3x, each scored on its whole vector.
    kubohb: on a space without ``active_if``, every config the model can propose comes from it
    (as TPE's do after its start-up trials; the prior still supplies every config until the
    first model exists); on a conditional space HpBandSter's random third (dropping it
    measured worse there) and candidates scored on their active dimensions only
    (``marginal``). Each choice measured better on such problems (docs/benchmarks.md)."""
    if model == "faithful":
        return ModelDefaults()
    if space.conditional:
        return ModelDefaults(marginal=True)
    return ModelDefaults(random_fraction=0.0)


@dataclass(frozen=True)
class ModelKnobs:
    min_points_in_model: int
    top_n_percent: int
    num_samples: int
    random_fraction: float
    bandwidth_factor: float
    min_bandwidth: float
    faithful_kde: bool = False
    marginal: bool = False
    """On a conditional space, the acquisition scores each candidate on the dimensions active
    in it only: both densities marginalised over the inactive ones, whose (imputed, perturbed)
    values decoding drops anyway (docs/bohb.md, "Inactive dimensions"). HpBandSter scores the
    whole vector."""
    all_budgets: bool = False
    """One model over every budget's results instead of one per budget (docs/bohb.md, "All
    budgets in one model"). Each configuration counts once, by its result at the largest budget
    it reached (a config proposed twice and run twice at that budget, twice); they are ranked
    by that budget (largest first), then by loss, failures last, and split into good and bad
    as one budget's results are. Nothing is dropped."""
    max_model_points: int | None = None
    """At most this many results feed a budget's KDE pair; None = all of them (HpBandSter).

    With N results at a budget and N <= max_model_points (or None), the fit is HpBandSter's. With
    N > max_model_points: the results are ranked by loss over all N (a stable sort: equal losses,
    e.g. failures, in arrival order), the good set is the first n_good and the bad set the next
    n_bad (the same n_good, n_bad and slices as below the bound); then the good KDE is fitted on
    m_good = min(|good|, max_model_points // 2) of the good set and the bad KDE on
    m_bad = min(|bad|, max_model_points - m_good) of the bad set, each a uniform sample without
    replacement kept in rank order, drawn from ``default_rng([seed, rung, N])`` (good first, then
    bad), which then imputes the subsets as usual. BOHB keeps it >= 2 * min_points_in_model, so
    each KDE keeps at least min_points_in_model > d rows."""


def truncated_normal(rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Normal(mean, sd) truncated to [0, 1], by inverting the CDF (what scipy's truncnorm.rvs does
    for such intervals, at a tenth of its per-call overhead). The interval always holds the mean,
    so its probability mass is large and the inversion is well conditioned."""
    lo = special.ndtr(-mean / sd)
    hi = special.ndtr((1.0 - mean) / sd)
    u = lo + rng.random(mean.shape) * (hi - lo)
    sample: np.ndarray = np.clip(mean + sd * special.ndtri(u), 0.0, 1.0)
    return sample


class _Observations:
    """Growable (vectors, losses) arrays for one budget; memory grows with the results only."""

    def __init__(self, dim: int) -> None:
        self.vectors = np.empty((8, dim))
        self.losses = np.empty(8)
        self.hidden = np.zeros(8, dtype=bool)  # all_budgets: the config has a larger budget's
        self.n = 0
        # The stable ranking (see ``ranking``) of the first ``_ranked`` results, built on demand.
        self._ranked = 0
        self._sorted_losses = np.empty(0)
        self._order = np.empty(0, dtype=np.intp)

    def _reserve(self, n: int) -> None:
        capacity = len(self.losses)
        if n <= capacity:
            return
        while capacity < n:
            capacity *= 2
        vectors, losses = np.empty((capacity, self.vectors.shape[1])), np.empty(capacity)
        hidden = np.zeros(capacity, dtype=bool)
        vectors[: self.n], losses[: self.n] = self.vectors[: self.n], self.losses[: self.n]
        hidden[: self.n] = self.hidden[: self.n]
        self.vectors, self.losses, self.hidden = vectors, losses, hidden

    def append(self, vector: np.ndarray, loss: float) -> None:
        if self.n == len(self.losses):
            self._reserve(self.n + 1)
        self.vectors[self.n] = vector
        self.losses[self.n] = loss
        self.n += 1

    def hide(self, row: int) -> None:
        """Mark a row hidden, also one about to be stored (row == n)."""
        self._reserve(row + 1)
        self.hidden[row] = True

    def extend(self, vectors: np.ndarray, losses: np.ndarray) -> None:
        """Append many results at once (what ``append`` row by row would store)."""
        k = len(losses)
        self._reserve(self.n + k)
        self.vectors[self.n : self.n + k] = vectors
        self.losses[self.n : self.n + k] = losses
        self.n += k

    def ranking(self) -> np.ndarray:
        """Indices of the results by (loss, arrival): ``np.argsort(losses, kind="stable")``.

        Kept up to date incrementally: the results told since the last call are merged in (a
        binary search and one O(N) insert), so a fit after each tell costs O(N), not a full sort
        (~3.7 ms at 50,000 results). The order is unique, so a restored optimiser rebuilds the
        same one from scratch."""
        if self._ranked < self.n:
            new = self.losses[self._ranked : self.n]
            by_loss = np.argsort(new, kind="stable")
            new_sorted = new[by_loss]
            # side="right": a new result goes after every earlier one with the same loss.
            at = np.searchsorted(self._sorted_losses, new_sorted, side="right")
            self._sorted_losses = np.insert(self._sorted_losses, at, new_sorted)
            self._order = np.insert(self._order, at, by_loss + self._ranked)
            self._ranked = self.n
        return self._order


def _subsample(rows: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` of ``rows`` uniformly without replacement, in their given (rank) order."""
    if m >= len(rows):
        return rows
    picked = rng.choice(len(rows), size=m, replace=False)
    picked.sort()
    out: np.ndarray = rows[picked]
    return out


def _to_json(values: np.ndarray, null: np.ndarray) -> list[Any]:
    """``values.tolist()`` with None where ``null`` is set (the same Python floats elsewhere)."""
    if not null.any():
        out: list[Any] = values.tolist()
        return out
    boxed = values.astype(object)
    boxed[null] = None
    listed: list[Any] = boxed.tolist()
    return listed


class ConfigGenerator:
    def __init__(self, space: SearchSpace, n_rungs: int, knobs: ModelKnobs, seed: int) -> None:
        self.space = space
        self.knobs = knobs
        self.seed = seed
        self.dim = space.dim
        self.n_choices = space.n_choices
        self.obs = [_Observations(self.dim) for _ in range(n_rungs)]
        # rung (or POOLED) -> (results stored at the fit, good, bad)
        self._fits: dict[int, tuple[int, kde.KDE, kde.KDE]] = {}
        # all_budgets: a config's vector -> its (rung, row)s, and how many rows are not hidden
        self._rows_of: dict[bytes, list[tuple[int, int]]] = {}
        self._visible = 0

    # ---- data -------------------------------------------------------------------------------
    def _split_sizes(self, n: int) -> tuple[int, int]:
        top = self.knobs.top_n_percent
        n_min = self.knobs.min_points_in_model
        n_good = max(n_min, (top * n) // 100)
        n_bad = max(n_min, ((100 - top) * n) // 100)
        return n_good, n_bad

    def _enough(self, n: int) -> bool:
        """Whether n results make a model (of one budget, or of all in all_budgets)."""
        if n < self.knobs.min_points_in_model:
            return False
        n_good, n_bad = self._split_sizes(n)
        good_rows = min(n_good, n)
        bad_rows = max(0, min(n_bad, n - n_good))
        return good_rows > self.dim and bad_rows > self.dim  # statsmodels needs nobs > k_vars

    def _source(self) -> int | None:
        """What the next proposal's model is fitted on: a rung, POOLED, or None (no model)."""
        if self.knobs.all_budgets:
            return POOLED if self._enough(self._visible) else None
        for rung in range(len(self.obs) - 1, -1, -1):
            if self._enough(self.obs[rung].n):
                return rung
        return None

    def model_rung(self) -> int | None:
        """The largest budget (rung index) with a model, or None; with all_budgets, the largest
        budget among the model's results."""
        source = self._source()
        if source != POOLED:
            return source
        return max(r for r, o in enumerate(self.obs) if o.n)

    def observe(self, rung: int, vector: np.ndarray, loss: float) -> bool:
        """Store one result (loss +inf for a failed run). Returns False if dropped (spec §2.3)."""
        if self.knobs.all_budgets:
            self._index(rung, self.obs[rung].n, vector)
        else:
            top = self._source()
            if top is not None and top > rung:
                return False
        self.obs[rung].append(vector, loss if math.isfinite(loss) else math.inf)
        return True

    def _index(self, rung: int, row: int, vector: np.ndarray) -> None:
        """all_budgets: the result about to be stored at (rung, row) hides every result of the
        same config at a smaller budget, or is hidden by one at a larger budget. Equal vectors
        are the same config (a promotion re-encodes the same values)."""
        rows = self._rows_of.setdefault(vector.tobytes(), [])
        top = max((r for r, _ in rows), default=-1)
        if rung < top:
            self.obs[rung].hide(row)
        else:
            if rung > top:
                for r, i in rows:
                    if not self.obs[r].hidden[i]:
                        self.obs[r].hidden[i] = True
                        self._visible -= 1
            self._visible += 1
        rows.append((rung, row))

    def _pooled_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(rungs, rows) of the results not hidden: the largest budget first, by loss within a
        budget (ties by arrival), every failure after every finite loss."""
        finite: list[tuple[int, np.ndarray]] = []
        failed: list[tuple[int, np.ndarray]] = []
        for r in range(len(self.obs) - 1, -1, -1):
            o = self.obs[r]
            if not o.n:
                continue
            order = o.ranking()
            order = order[~o.hidden[order]]
            ok = np.isfinite(o.losses[order])
            finite.append((r, order[ok]))
            failed.append((r, order[~ok]))
        parts = finite + failed
        rungs = np.concatenate([np.full(len(rows), r, dtype=np.intp) for r, rows in parts])
        rows = np.concatenate([rows for _, rows in parts])
        return rungs, rows

    def _gather(self, rungs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim))
        for r in np.unique(rungs):
            at = rungs == r
            out[at] = self.obs[int(r)].vectors[rows[at]]
        return out

    # ---- models -----------------------------------------------------------------------------
    def _models(self, rung: int) -> tuple[kde.KDE, kde.KDE]:
        if rung == POOLED:
            stored = sum(o.n for o in self.obs)
            cached = self._fits.get(rung)
            if cached is not None and cached[0] == stored:
                return cached[1], cached[2]
            rungs, rows = self._pooled_order()
            rng = np.random.default_rng([self.seed, len(self.obs), stored])
            good_at, bad_at = self._split(len(rows), np.arange(len(rows)), rng)
            good = self._gather(rungs[good_at], rows[good_at])
            bad = self._gather(rungs[bad_at], rows[bad_at])
            return self._fit(rung, stored, good, bad, rng)
        o = self.obs[rung]
        cached = self._fits.get(rung)
        if cached is not None and cached[0] == o.n:
            return cached[1], cached[2]
        data = o.vectors[: o.n]
        rng = np.random.default_rng([self.seed, rung, o.n])
        bound = self.knobs.max_model_points
        if bound is None or o.n <= bound:
            n_good, n_bad = self._split_sizes(o.n)
            idx = np.argsort(o.losses[: o.n])  # default kind, as HpBandSter (ties: numpy's)
            good_idx, bad_idx = idx[:n_good], idx[n_good : n_good + n_bad]
        else:  # deviation 15: the same split over all N, each KDE on a subsample of its set
            good_idx, bad_idx = self._split(o.n, o.ranking(), rng)
        return self._fit(rung, o.n, data[good_idx], data[bad_idx], rng)

    def _split(
        self, n: int, ranked: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The good and bad slices of ``ranked`` (n results, best first), each subsampled to its
        share of max_model_points when above it."""
        n_good, n_bad = self._split_sizes(n)
        good_idx, bad_idx = ranked[:n_good], ranked[n_good : n_good + n_bad]
        bound = self.knobs.max_model_points
        if bound is not None and n > bound:
            m_good = min(len(good_idx), bound // 2)
            m_bad = min(len(bad_idx), bound - m_good)
            good_idx = _subsample(good_idx, m_good, rng)
            bad_idx = _subsample(bad_idx, m_bad, rng)
        return good_idx, bad_idx

    def _fit(
        self, source: int, stored: int, good: np.ndarray, bad: np.ndarray, rng: np.random.Generator
    ) -> tuple[kde.KDE, kde.KDE]:
        k = self.knobs
        good = kde.impute(good, self.n_choices, rng)
        bad = kde.impute(bad, self.n_choices, rng)
        good_kde = kde.fit(good, self.n_choices, k.min_bandwidth, faithful=k.faithful_kde)
        bad_kde = kde.fit(bad, self.n_choices, k.min_bandwidth, faithful=k.faithful_kde)
        self._fits = {source: (stored, good_kde, bad_kde)}  # only the top model is ever used
        log.debug(
            "event=kde_fit rung=%d n=%d n_good=%d n_bad=%d",
            source, stored, good.shape[0], bad.shape[0],
        )  # fmt: skip
        return good_kde, bad_kde

    def propose(self, rng: np.random.Generator) -> tuple[dict[str, Any], bool]:
        """A config and whether the model picked it (else a prior sample)."""
        rung = self._source()
        # Same short-circuit as HpBandSter: no coin is drawn before the first model exists.
        if rung is None or rng.random() < self.knobs.random_fraction:
            return self.space.decode(self.space.sample_vector(rng)), False
        try:
            vector = self._best_candidate(rung, rng)
        except (ValueError, FloatingPointError) as exc:  # HpBandSter falls back to random too
            log.warning("bohb.model_proposal_failed", extra={"fields": {"error": repr(exc)}})
            vector = None
        if vector is None:
            return self.space.decode(self.space.sample_vector(rng)), False
        return self.space.decode(vector), True

    def _best_candidate(self, rung: int, rng: np.random.Generator) -> np.ndarray | None:
        good, bad = self._models(rung)
        k = self.knobs
        cat = self.n_choices > 0
        bw = np.maximum(good.bw, k.min_bandwidth)
        means = good.data[rng.integers(good.n, size=k.num_samples)]
        cand = means.copy()
        if (~cat).any():
            m = means[:, ~cat]
            sd = np.broadcast_to(k.bandwidth_factor * bw[~cat], m.shape)
            cand[:, ~cat] = truncated_normal(rng, m, sd)
        if cat.any():
            keep = rng.random((k.num_samples, int(cat.sum()))) < (1 - bw[cat])
            uniform = np.floor(rng.random(keep.shape) * self.n_choices[cat])
            cand[:, cat] = np.where(keep, np.trunc(means[:, cat]), uniform)
        if k.marginal and self.space.conditional:
            rounded = np.where(cat, np.rint(cand), cand)
            active = self.space.active_mask(rounded)
            l_pdf, g_pdf = good.pdf(cand, active), bad.pdf(cand, active)
        else:
            l_pdf, g_pdf = good.pdf(cand), bad.pdf(cand)
        # Python max() semantics of HpBandSter's max(1e-32, g) / max(l, 1e-32), NaN included.
        g_floor = np.where(g_pdf > _FLOOR, g_pdf, _FLOOR)
        l_floor = np.where(l_pdf < _FLOOR, _FLOOR, l_pdf)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            acq = g_floor / l_floor
        early = np.flatnonzero(~np.isfinite(acq) & np.isfinite(l_pdf))
        if len(early):  # HpBandSter accepts such a candidate at once (sequential loop, first one)
            best = int(early[0])
        else:
            finite = np.where(np.isnan(acq), math.inf, acq)
            best = int(np.argmin(finite))
            if not finite[best] < math.inf:
                return None
        vector: np.ndarray = cand[best]
        vector[cat] = np.rint(vector[cat])
        return vector

    # ---- state --------------------------------------------------------------------------------
    # Vectorised: NaN vector entries and non-finite losses become None (null in JSON), everything
    # else the Python floats ``tolist`` gives, so the JSON is what a per-element loop wrote.
    def state_dict(self) -> list[dict[str, Any]]:
        out = []
        for o in self.obs:
            vectors, losses = o.vectors[: o.n], o.losses[: o.n]
            out.append(
                {
                    "vectors": _to_json(vectors, np.isnan(vectors)),
                    "losses": _to_json(losses, ~np.isfinite(losses)),
                }
            )
        return out

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        """Restore ``state_dict()``'s observations: None is NaN in a vector, +inf as a loss."""
        for rung, (o, s) in enumerate(zip(self.obs, state, strict=True)):
            if len(s["vectors"]) != len(s["losses"]):
                raise ValueError(
                    f"observations of rung {rung}: {len(s['vectors'])} vectors but "
                    f"{len(s['losses'])} losses"
                )
            vectors = np.array(s["vectors"], dtype=float)  # None -> NaN
            if vectors.size == 0:
                vectors = vectors.reshape(0, self.dim)
            if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                raise ValueError(
                    f"observations of rung {rung}: vectors of shape {vectors.shape}, "
                    f"expected (n, {self.dim})"
                )
            losses = np.array(s["losses"], dtype=float).reshape(-1)
            if self.knobs.all_budgets:
                for row in range(len(losses)):
                    self._index(rung, o.n + row, vectors[row])
            o.extend(vectors, np.where(np.isnan(losses), math.inf, losses))
