"""A product-kernel density estimator with statsmodels ``KDEMultivariate`` semantics (spec §2.5).

Continuous columns use a Gaussian kernel that is not renormalised on [0, 1]; categorical columns
use the Aitchison-Aitken kernel. Bandwidths are statsmodels' ``normal_reference`` for every
column, clipped below at ``min_bandwidth``.

HpBandSter inherits two statsmodels quirks that we fix by default (``faithful=False``):
- Aitchison-Aitken uses L = the number of distinct values in the column's data: a column whose
  data holds a single level divides by L - 1 = 0 (HpBandSter #100). We use L = the number of
  choices of the parameter instead (a one-choice parameter contributes a factor 1).
- normal_reference can exceed 1 for a categorical column, giving negative densities. We clip a
  categorical bandwidth to (L-1)/L, where the kernel is uniform over the choices.
``faithful=True`` keeps statsmodels' behaviour bit for bit (it is what the golden vectors test).

Evaluation is vectorised: the Gaussian part of all query x data pairs is one matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def normal_reference(data: np.ndarray) -> np.ndarray:
    """statsmodels' rule of thumb: 1.06 * std (ddof 0) * n ** (-1 / (4 + d)), for every column."""
    n, d = data.shape
    bw: np.ndarray = 1.06 * np.std(data, axis=0) * n ** (-1.0 / (4 + d))
    return bw


@dataclass(frozen=True)
class KDE:
    data: np.ndarray  # (n, d), no NaN (inactive values imputed before fitting)
    bw: np.ndarray  # (d,) bandwidths after clipping
    levels: np.ndarray  # (d,) L of the Aitchison-Aitken kernel per categorical column, 0 = numeric
    _cont: np.ndarray = field(init=False, repr=False)
    _scaled: np.ndarray = field(init=False, repr=False)
    _sq_norms: np.ndarray = field(init=False, repr=False)
    _norm: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cont = self.levels == 0
        scaled = self.data[:, cont] / self.bw[cont]
        object.__setattr__(self, "_cont", cont)
        object.__setattr__(self, "_scaled", scaled)
        object.__setattr__(self, "_sq_norms", np.einsum("ij,ij->i", scaled, scaled))
        norm = (2 * math.pi) ** (-0.5 * int(cont.sum())) / float(np.prod(self.bw[cont]))
        object.__setattr__(self, "_norm", norm)

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    def pdf(self, x: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Density at each row of ``x`` (shape (m, d)); returns shape (m,). With ``active``
        ((m, d) booleans), the density of each row's active dimensions only: the product
        kernel marginalised over the others (their factors, which integrate to 1, dropped)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if active is not None and not active.all():
            return self._marginal_pdf(x, active)
        q = x[:, self._cont] / self.bw[self._cont]
        # -|q - X|^2 / 2 = q.X - |q|^2 / 2 - |X|^2 / 2: one matmul instead of an (m, n, d)
        # broadcast, then in-place updates (this runs on every proposal).
        kernel = q @ self._scaled.T
        kernel -= 0.5 * np.einsum("ij,ij->i", q, q)[:, None]
        kernel -= 0.5 * self._sq_norms[None, :]
        np.minimum(kernel, 0.0, out=kernel)  # rounding can make a squared distance negative
        np.exp(kernel, out=kernel)
        for j in np.flatnonzero(~self._cont):
            match = x[:, j, None] == self.data[None, :, j]
            bw, levels = self.bw[j], self.levels[j]
            with np.errstate(divide="ignore", invalid="ignore"):  # faithful mode may divide by 0
                other = bw / (levels - 1) if levels > 1 else (np.float64(bw) / 0.0)
            if levels == 1 and bw == 0.0:  # fixed mode, one-choice parameter: factor 1
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                kernel = kernel * np.where(match, 1.0 - bw, other)
        density: np.ndarray = kernel.mean(axis=1) * self._norm
        return density

    def _marginal_pdf(self, x: np.ndarray, active: np.ndarray) -> np.ndarray:
        cont = self._cont
        on = active[:, cont]
        q = np.where(on, x[:, cont] / self.bw[cont], 0.0)
        # -|q - X|^2 / 2 over each row's active dimensions: the terms of pdf, each masked
        kernel = q @ self._scaled.T
        kernel -= 0.5 * np.einsum("ij,ij->i", q, q)[:, None]
        kernel -= 0.5 * (on.astype(float) @ (self._scaled**2).T)
        np.minimum(kernel, 0.0, out=kernel)
        np.exp(kernel, out=kernel)
        for j in np.flatnonzero(~cont):
            bw, levels = self.bw[j], self.levels[j]
            if levels <= 1:  # one choice: factor 1 (the faithful quirks are not kept here)
                continue
            match = x[:, j, None] == self.data[None, :, j]
            factor = np.where(match, 1.0 - bw, bw / (levels - 1))
            kernel = kernel * np.where(active[:, j, None], factor, 1.0)
        log_norm = -np.log(math.sqrt(2 * math.pi) * self.bw[cont])
        density: np.ndarray = kernel.mean(axis=1) * np.exp(on.astype(float) @ log_norm)
        return density


def fit(
    data: np.ndarray,
    n_choices: np.ndarray,
    min_bandwidth: float = 1e-3,
    *,
    faithful: bool = False,
) -> KDE:
    """Fit on ``data`` (n, d); ``n_choices[j]``: choices of a categorical column, 0 if numeric."""
    data = np.asarray(data, dtype=float)
    n_choices = np.asarray(n_choices, dtype=np.int64)
    bw = np.maximum(normal_reference(data), min_bandwidth)
    if faithful:
        levels = np.array(
            [len(np.unique(data[:, j])) if k > 0 else 0 for j, k in enumerate(n_choices)],
            dtype=np.int64,
        )
    else:
        levels = n_choices.copy()
        cat = levels > 0
        bw[cat] = np.minimum(bw[cat], (levels[cat] - 1) / levels[cat])
    return KDE(data=data, bw=bw, levels=levels)


def impute(rows: np.ndarray, n_choices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fill inactive (NaN) entries as HpBandSter's ``impute_conditional_data`` does (spec §2.4).

    For each row, take its first NaN column j; copy the row's NaN entries from a random row of the
    same array that has column j set, or draw j from its prior when no row has it; repeat.
    (HpBandSter loops on ``np.any(nan_indices)``, which stops early when only column 0 is NaN; we
    loop on the count.)
    """
    out = np.array(rows, dtype=float, copy=True)
    missing = np.isnan(out)
    if not missing.any():
        return out
    finite = ~missing
    donors_of: dict[int, np.ndarray] = {}  # column -> rows that have it (fixed: from ``rows``)
    for r in np.flatnonzero(missing.any(axis=1)):  # a complete row draws nothing
        nan = np.flatnonzero(np.isnan(out[r]))
        while len(nan):
            j = int(nan[0])
            donors = donors_of.get(j)
            if donors is None:
                donors = donors_of[j] = np.flatnonzero(finite[:, j])
            if len(donors):
                donor = rows[donors[rng.integers(len(donors))]]
                out[r, nan] = donor[nan]
            else:
                k = int(n_choices[j])
                out[r, j] = rng.integers(k) if k > 0 else rng.random()
            nan = np.flatnonzero(np.isnan(out[r]))
    return out
