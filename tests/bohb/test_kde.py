"""The KDE against statsmodels' golden vectors, and the fixes for HpBandSter's categorical bugs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from controller.bohb import kde

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "kde_golden.json").read_text())


def _n_choices(var_type: str, data: np.ndarray) -> np.ndarray:
    return np.array([0 if t == "c" else int(data[:, j].max()) + 1 for j, t in enumerate(var_type)])


@pytest.mark.parametrize("case", GOLDEN, ids=[c["var_type"] for c in GOLDEN])
def test_golden_vectors_faithful_mode(case: dict) -> None:
    data = np.array(case["data"])
    np.testing.assert_allclose(
        kde.normal_reference(data), case["bw_normal_reference"], rtol=0, atol=1e-9
    )
    model = kde.fit(data, _n_choices(case["var_type"], data), 1e-3, faithful=True)
    np.testing.assert_allclose(model.bw, case["bw_clipped"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.pdf(np.array(case["queries"])), case["pdf"], rtol=0, atol=1e-9)


def test_single_level_categorical_is_finite_when_fixed() -> None:
    # HpBandSter #100: a categorical column with one level in the data divides by L - 1 = 0.
    data = np.column_stack([np.linspace(0.1, 0.9, 12), np.ones(12)])
    queries = np.array([[0.5, 0.0], [0.5, 1.0]])
    faithful = kde.fit(data, np.array([0, 2]), faithful=True).pdf(queries)
    assert not np.isfinite(faithful[0])  # the reference bug, reproduced
    fixed = kde.fit(data, np.array([0, 2])).pdf(queries)
    assert np.all(np.isfinite(fixed))
    assert fixed[1] > fixed[0] > 0


def test_categorical_bandwidth_above_one_is_clipped() -> None:
    case = next(c for c in GOLDEN if max(c["bw_clipped"]) > 1)  # the 'cu' case: bw 1.65
    data = np.array(case["data"])
    n_choices = np.array([0, 10])
    faithful = kde.fit(data, n_choices, faithful=True)
    grid = np.array([[0.5, k] for k in range(10)], dtype=float)
    assert (faithful.pdf(grid) < 0).any()  # negative densities in the reference
    fixed = kde.fit(data, n_choices)
    assert fixed.bw[1] == pytest.approx(0.9)  # (k - 1) / k: uniform over the choices
    assert np.all(fixed.pdf(grid) > 0)


def test_one_choice_categorical_contributes_factor_one() -> None:
    data = np.column_stack([np.linspace(0, 1, 9), np.zeros(9)])
    model = kde.fit(data, np.array([0, 1]))
    assert model.bw[1] == 0.0
    bw = model.bw[0]
    expected = np.mean(np.exp(-((data[:, 0] - 0.3) ** 2) / (2 * bw**2)) / np.sqrt(2 * np.pi) / bw)
    assert model.pdf(np.array([[0.3, 0.0]]))[0] == pytest.approx(expected, rel=1e-12)


def test_vectorised_pdf_equals_the_direct_product_formula() -> None:
    rng = np.random.default_rng(3)
    data = np.column_stack([rng.random((40, 3)), rng.integers(0, 4, 40)])
    model = kde.fit(data, np.array([0, 0, 0, 4]))
    x = np.column_stack([rng.random((7, 3)), rng.integers(0, 4, 7)])
    bw = model.bw
    direct = []
    for q in x:
        cont = np.exp(-((data[:, :3] - q[:3]) ** 2) / (2 * bw[:3] ** 2)) / np.sqrt(2 * np.pi)
        cat = np.where(data[:, 3] == q[3], 1 - bw[3], bw[3] / 3)
        direct.append(np.mean(np.prod(cont / bw[:3], axis=1) * cat))
    np.testing.assert_allclose(model.pdf(x), direct, rtol=1e-10)


def test_impute_fills_from_rows_that_have_the_value() -> None:
    rows = np.array([[0, 0.2, np.nan], [1, np.nan, 0.7], [1, 0.4, np.nan]])
    out = kde.impute(rows, np.array([2, 0, 0]), np.random.default_rng(0))
    assert not np.isnan(out).any()
    assert out[1, 1] in (0.2, 0.4)  # copied from a row where column 1 is set
    assert out[0, 2] == 0.7 and out[2, 2] == 0.7
    assert np.isnan(rows).sum() == 3  # input untouched
    lonely = kde.impute(np.array([[0.5, np.nan]]), np.array([0, 3]), np.random.default_rng(0))
    assert lonely[0, 1] in (0, 1, 2)  # nobody has it: drawn from the prior
