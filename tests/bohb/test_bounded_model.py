"""The bounded model (``max_model_points``, docs/bohb.md deviation 15) and the vectorised state.

tests/data/bohb_bounded_reference.json was recorded against controller/bohb as of commit 1b461e0
(before the knob existed; tests/bohb/bounded_drive.py says how). It holds
- ``long``: the first 420 suggestions of ``drive(BOHB(SPACE, 1, 1, seed=4), 420)`` — one budget,
  so the model is fitted on every result (up to 419, conditional parameters, so imputation runs,
  and failures, so +inf losses tie) — once per kind of floating-point arithmetic it was recorded
  on, with that arithmetic's digest;
- ``state``: ``json.dumps(state_dict()["observations"])`` after ``drive(BOHB(SPACE, 1, 9,
  seed=11), 150)`` (NaN vector entries and failed losses written as null).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controller.bohb import BOHB
from controller.bohb.model import ConfigGenerator, ModelKnobs, _Observations
from controller.bohb.space import SearchSpace

from .bounded_drive import SPACE, arithmetic, drive, loss_of

REFERENCE = Path(__file__).parent.parent / "data" / "bohb_bounded_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text())
    return data


def _sequential(opt: BOHB, start: int, n: int) -> list[tuple[str, dict[str, Any], bool]]:
    """`n` sequential ask/tell steps (one worker), the loss of step i from `loss_of(config, i)`."""
    out = []
    for i in range(start, start + n):
        s = opt.ask()
        assert s is not None
        opt.tell(s.trial_id, loss_of(s.config, i))
        out.append((s.trial_id, s.config, s.model_based))
    return out


def _knobs(bound: int | None) -> ModelKnobs:
    return ModelKnobs(9, 15, 64, 1 / 3, 3.0, 1e-3, max_model_points=bound)


# ---- below the bound: today's behaviour, exactly ------------------------------------------------
@pytest.mark.parametrize("bound", ["default", "faithful", None, 420])
def test_below_the_bound_the_suggestions_are_todays(
    reference: dict[str, Any], bound: int | str | None
) -> None:
    # 420 suggestions on one budget: every ask sees at most 419 results, never above 420. The
    # recording predates the model knob: "faithful" (BOHB's default) is HpBandSter's, exactly.
    if bound == "default":
        opt = BOHB(SPACE, 1, 1, seed=4)
    elif bound == "faithful":
        opt = BOHB(SPACE, 1, 1, seed=4, model="faithful")
    else:
        opt = BOHB(SPACE, 1, 1, seed=4, max_model_points=None if bound is None else int(bound))
    got = drive(opt, 420)
    digest = arithmetic()
    mine = [r["suggestions"] for r in reference["long"] if r["arithmetic"] == digest]
    if mine:
        assert got == mine[0]
    else:  # a recording made before digests existed may be this kind's: then exactly that one
        undigested = [r["suggestions"] for r in reference["long"] if r["arithmetic"] is None]
        assert got in undigested, (
            f"no recording for this machine's arithmetic {digest}: record one as "
            "tests/bohb/bounded_drive.py says"
        )


def test_a_binding_bound_changes_only_the_suggestions_made_above_it(
    reference: dict[str, Any],
) -> None:
    got = drive(BOHB(SPACE, 1, 1, seed=4, max_model_points=200), 420)
    todays = drive(BOHB(SPACE, 1, 1, seed=4, max_model_points=None), 420)
    # Suggestion k is asked with at most k results told: the first 201 see N <= 200.
    assert got[:201] == todays[:201]
    assert got != todays


def test_the_default_bound_is_saved_and_an_old_state_restores_unbounded() -> None:
    opt = BOHB(SPACE, 1, 9, seed=0)
    assert opt.knobs.max_model_points == 1024
    state = opt.state_dict()
    assert state["args"]["max_model_points"] == 1024
    assert BOHB.from_state_dict(state).knobs.max_model_points == 1024
    del state["args"]["max_model_points"]  # written before the knob existed: HpBandSter's model
    assert BOHB.from_state_dict(state).knobs.max_model_points is None
    unbounded = BOHB(SPACE, 1, 9, seed=0, max_model_points=None)
    assert unbounded.state_dict()["args"]["max_model_points"] is None


def test_a_bound_below_two_models_of_n_min_is_raised() -> None:
    opt = BOHB(SPACE, 1, 9, seed=0, max_model_points=5)  # d = 8: N_min = 9
    assert opt.knobs.max_model_points == 18
    opt = BOHB(SPACE, 1, 9, seed=0, min_points_in_model=20, max_model_points=30)
    assert opt.knobs.max_model_points == 40


# ---- above the bound -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "bound", "expected"),
    [
        (200, 200, (30, 170)),  # N = bound: unbounded fit
        (201, 200, (30, 170)),  # above, but the 30 + 170 rows of the split fit in the bound
        (300, 200, (45, 155)),  # the good set whole, the bad set gets the rest
        (1000, 200, (100, 100)),  # both capped at their half
        (5000, 64, (32, 32)),
    ],
)
def test_above_the_bound_the_split_is_over_all_n_and_each_kde_gets_its_share(
    n: int, bound: int, expected: tuple[int, int]
) -> None:
    space = SearchSpace.builtin("zela2018")  # no conditions: fitted rows are observed vectors
    knobs = ModelKnobs(18, 15, 64, 1 / 3, 3.0, 1e-3, max_model_points=bound)
    gen = ConfigGenerator(space, 1, knobs, 0)
    rng = np.random.default_rng(n)
    losses = rng.permutation(n).astype(float)  # distinct: the ranking is unambiguous
    for loss in losses:
        gen.observe(0, space.sample_vector(rng), float(loss))
    good, bad = gen._models(0)
    assert (good.n, bad.n) == expected and good.n + bad.n <= max(bound, n)
    n_good, n_bad = gen._split_sizes(n)
    # The split over all N, as today: the good set is the n_good best of all N results, the bad
    # set the next n_bad; each KDE's rows come from its own set, in rank order.
    rank = np.empty(n, dtype=int)
    rank[np.argsort(losses)] = np.arange(n)
    row_of = {gen.obs[0].vectors[i].tobytes(): i for i in range(n)}
    good_ranks = [rank[row_of[v.tobytes()]] for v in good.data]
    bad_ranks = [rank[row_of[v.tobytes()]] for v in bad.data]
    assert all(r < n_good for r in good_ranks) and good_ranks == sorted(set(good_ranks))
    assert all(n_good <= r < n_good + n_bad for r in bad_ranks)
    assert bad_ranks == sorted(set(bad_ranks))
    if n <= bound:  # the unbounded fit: the whole sets
        assert good_ranks == list(range(n_good))
    # A pure function of the data: a second generator with the same results fits the same.
    twin = ConfigGenerator(space, 1, gen.knobs, 0)
    twin.load_state_dict(gen.state_dict())
    twin_good, twin_bad = twin._models(0)
    assert np.array_equal(twin_good.data, good.data) and np.array_equal(twin_bad.data, bad.data)


def test_the_ranking_is_the_stable_argsort_however_the_results_arrive() -> None:
    rng = np.random.default_rng(0)
    obs = _Observations(2)
    # Few distinct values and failures: many ties, broken by arrival.
    values = np.concatenate([rng.integers(0, 20, 3000) / 4, np.full(50, math.inf), [-0.0, 0.0]])
    rng.shuffle(values)
    told = 0
    for batch in [1, 1, 5, 300, 1, 2, 1000, 1, 1, 1, 40, 700]:
        for loss in values[told : told + batch]:
            obs.append(np.zeros(2), float(loss))
        told += batch
        assert np.array_equal(obs.ranking(), np.argsort(obs.losses[: obs.n], kind="stable"))
    assert obs.n == told and np.array_equal(obs.ranking(), obs.ranking())


def test_a_restored_optimiser_above_the_bound_continues_exactly() -> None:
    opt = BOHB(SPACE, 1, 1, seed=4, max_model_points=60)
    _sequential(opt, 0, 150)
    snapshot = json.loads(json.dumps(opt.state_dict(), allow_nan=False))
    clone = BOHB.from_state_dict(snapshot)
    ahead, again = _sequential(opt, 150, 60), _sequential(clone, 150, 60)
    assert ahead == again
    assert sum(model_based for *_, model_based in ahead) > 30
    good, bad = clone._gen._models(0)
    assert clone._gen.obs[0].n == 210 and good.n + bad.n == 60  # the fit was bounded
    assert clone.state_dict() == opt.state_dict()


# ---- the state ----------------------------------------------------------------------------------
def test_the_state_json_is_unchanged(reference: dict[str, Any]) -> None:
    opt = BOHB(SPACE, 1, 9, seed=11)
    drive(opt, 150)
    observations = opt.state_dict()["observations"]
    assert json.dumps(observations, allow_nan=False) == reference["state"]
    assert "null" in reference["state"]  # NaN entries and failed losses are in there
    restored = BOHB.from_state_dict(json.loads(json.dumps(opt.state_dict(), allow_nan=False)))
    assert json.dumps(restored.state_dict()["observations"]) == reference["state"]
    for mine, theirs in zip(opt._gen.obs, restored._gen.obs, strict=True):
        assert mine.n == theirs.n
        assert np.array_equal(mine.vectors[: mine.n], theirs.vectors[: theirs.n], equal_nan=True)
        assert np.array_equal(mine.losses[: mine.n], theirs.losses[: theirs.n])


def test_the_vectorised_state_equals_the_per_element_conversion() -> None:
    rng = np.random.default_rng(1)
    space = SearchSpace.builtin("zela2018")
    gen = ConfigGenerator(space, 2, _knobs(None), 0)
    specials = [math.nan, -0.0, 0.0, 5e-324, 1.0, 1 / 3, 1e-17]
    for i in range(500):
        vector = rng.random(space.dim)
        vector[rng.random(space.dim) < 0.2] = rng.choice(specials)
        loss = [math.inf, 0.1 + i, -0.0, 1 / 7][i % 4]
        gen.obs[i % 2].append(vector, loss)
    gen.obs[1].n = 0  # an empty budget
    old = [
        {
            "vectors": [
                [None if math.isnan(v) else v for v in row] for row in o.vectors[: o.n].tolist()
            ],
            "losses": [v if math.isfinite(v) else None for v in o.losses[: o.n].tolist()],
        }
        for o in gen.obs
    ]
    state = gen.state_dict()
    assert json.dumps(state, allow_nan=False) == json.dumps(old, allow_nan=False)
    assert all(type(v) is float for v in state[0]["vectors"][0] if v is not None)
    twin = ConfigGenerator(space, 2, _knobs(None), 0)
    twin.load_state_dict(json.loads(json.dumps(state)))
    assert json.dumps(twin.state_dict()) == json.dumps(old)
    with pytest.raises(ValueError, match="rung 0"):
        twin.load_state_dict([{"vectors": [[0.5] * 3], "losses": [1.0]}, state[1]])
    with pytest.raises(ValueError, match="rung 0"):
        twin.load_state_dict([{"vectors": [], "losses": [1.0]}, state[1]])


def _impute_before(rows: np.ndarray, n_choices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """kde.impute before its donors were cached per column (verbatim), the oracle."""
    out = np.array(rows, dtype=float, copy=True)
    if not np.isnan(out).any():
        return out
    finite = ~np.isnan(rows)
    for r in range(out.shape[0]):
        nan = np.flatnonzero(np.isnan(out[r]))
        while len(nan):
            j = nan[0]
            donors = np.flatnonzero(finite[:, j])
            if len(donors):
                donor = rows[donors[rng.integers(len(donors))]]
                out[r, nan] = donor[nan]
            else:
                k = int(n_choices[j])
                out[r, j] = rng.integers(k) if k > 0 else rng.random()
            nan = np.flatnonzero(np.isnan(out[r]))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_imputation_draws_exactly_as_before(seed: int) -> None:
    from controller.bohb import kde

    rng = np.random.default_rng(seed)
    rows = rng.random((300, 6))
    rows[:, :2] = np.floor(rows[:, :2] * 3)
    rows[rng.random(rows.shape) < [0.0, 0.3, 0.5, 0.2, 0.9, 1.0]] = math.nan  # col 5: no donor
    n_choices = np.array([3, 3, 0, 0, 0, 2])
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    assert np.array_equal(kde.impute(rows, n_choices, a), _impute_before(rows, n_choices, b))
    assert a.bit_generator.state == b.bit_generator.state
