"""Asynchronous promotions (``promotion="async"``, ``controller/bohb/asha.py``): the ASHA rule
inside each Hyperband bracket, its closed-stage rule, resume, and the sync path left unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.bohb import BOHB, Suggestion
from controller.bohb.asha import AsyncSHIteration
from controller.bohb.iteration import COMPLETED, SHIteration
from tests.bohb.test_bohb import counting_ones_space, simulate

SYNC_SEQUENCE = Path(__file__).parent.parent / "data" / "bohb_sync_sequence.json"


def _async(min_budget: float, max_budget: float, **kwargs: Any) -> BOHB:
    return BOHB(counting_ones_space(), min_budget, max_budget, promotion="async", **kwargs)


def _ask(opt: BOHB) -> Suggestion:
    s = opt.ask()
    assert s is not None
    return s


def _async_iterations(opt: BOHB) -> list[AsyncSHIteration]:
    its = list(opt._iterations)
    assert all(isinstance(it, AsyncSHIteration) for it in its)
    return [it for it in its if isinstance(it, AsyncSHIteration)]


# ---- the rule, by hand ---------------------------------------------------------------------------
def test_three_results_of_nine_promote_the_best_at_once() -> None:
    opt = _async(1, 9, seed=0, max_iterations=1)  # one bracket: 9/3/1 configs at budgets 1/3/9
    stage0 = [_ask(opt) for _ in range(9)]
    assert [s.trial_id for s in stage0] == [f"it0-c{i}-r0" for i in range(9)]
    for s, loss in zip(stage0[:3], [0.5, 0.2, 0.9], strict=True):
        opt.tell(s.trial_id, loss)
    promoted = _ask(opt)  # 6 configs of stage 0 still run: sync would wait for them
    assert (promoted.trial_id, promoted.config_id) == ("it0-c1-r1", "it0-c1")
    assert (promoted.budget, promoted.rung, promoted.iteration) == (3, 1, 0)
    assert promoted.config == stage0[1].config and not promoted.model_based
    assert opt.ask() is None  # floor(3 / 3) = 1 promotion, made; all 9 configs sampled
    opt.tell(stage0[3].trial_id, 0.6)
    assert opt.ask() is None  # 4 results: still floor(4 / 3) = 1, the best (c1) is promoted
    opt.tell(stage0[4].trial_id, 0.1)
    nxt = _ask(opt)  # a new best: top 1 of 5 results, not promoted yet
    assert nxt.trial_id == "it0-c4-r1"
    opt.tell(stage0[5].trial_id, None)  # a failure counts as a result, never as a candidate
    assert opt.ask() is None  # 6 results: the top 2 (c4 0.1, c1 0.2) are both at stage 1
    opt.tell(stage0[6].trial_id, 0.15)
    opt.tell(stage0[7].trial_id, 0.05)
    opt.tell(stage0[8].trial_id, None)
    last = _ask(opt)  # 9 results, top 3 = c7 0.05, c4 0.1, c6 0.15: c7 takes the last place
    assert last.trial_id == "it0-c7-r1"
    assert opt.ask() is None  # stage 1 is full (3 of 3) though c6 ranks above c1 now
    # A result at stage 1: floor(1 / 3) = 0 promotions to stage 2 yet.
    opt.tell(promoted.trial_id, 0.7)
    assert opt.ask() is None
    summary = opt.summary()["iterations"][0]
    assert summary["stage"] == 1 and summary["sampled"] == [9, 3, 0]
    assert not summary["finished"]
    assert summary["states"] == {
        "queued": 0,
        "running": 2,  # c4 and c7 at stage 1
        "review": 1,  # c1's stage-1 result
        "crashed": 2,
        "terminated": 4,  # stage 1 is full: no stage-0 config can go up any more
        "completed": 0,
    }


def test_promotion_scans_from_the_top_stage_down() -> None:
    opt = _async(1, 9, seed=0, max_iterations=1)
    stage0 = [_ask(opt) for _ in range(9)]
    for i, s in enumerate(stage0):
        opt.tell(s.trial_id, float(i))
    stage1 = [_ask(opt) for _ in range(3)]
    assert [s.trial_id for s in stage1] == ["it0-c0-r1", "it0-c1-r1", "it0-c2-r1"]  # by loss
    for s, loss in zip(stage1, [3.0, 1.0, 2.0], strict=True):
        opt.tell(s.trial_id, loss)
    top = _ask(opt)
    assert top.trial_id == "it0-c1-r2" and top.budget == 9
    assert opt.ask() is None
    opt.tell(top.trial_id, 0.5)
    assert opt.ask() is None and opt.finished
    it = _async_iterations(opt)[0]
    assert it.is_finished and it.complete and it.stage == it.last_stage == 2
    assert it.counts()[COMPLETED] == 9 and it.actual == [9, 3, 1]
    inc = opt.incumbent()
    assert inc is not None and (inc.trial_id, inc.budget, inc.loss) == ("it0-c1-r2", 9, 0.5)


def test_failed_configs_are_never_promoted_and_stages_never_overfill() -> None:
    opt = _async(1, 27, seed=1)
    rng = np.random.default_rng(1)
    losses: dict[tuple[str, int], float | None] = {}  # (config id, rung) -> told loss
    per_stage: dict[tuple[int, int], set[str]] = {}  # (iteration, rung) -> configs run there
    for _ in range(600):
        s = _ask(opt)
        per_stage.setdefault((s.iteration, s.rung), set()).add(s.config_id)
        if s.rung > opt._iterations[s.iteration].bracket.first_rung:
            previous = losses[(s.config_id, s.rung - 1)]  # it reported at the stage below
            assert previous is not None and math.isfinite(previous)
        while len(opt.pending()) > 12 or (opt.pending() and rng.random() < 0.5):
            trial_id = opt.pending()[int(rng.integers(len(opt.pending())))]
            loss = None if rng.random() < 0.3 else float(rng.random())
            config_id, told_rung = trial_id.rsplit("-r", 1)
            losses[(config_id, int(told_rung))] = loss
            opt.tell(trial_id, loss)
    for (iteration, rung), configs in per_stage.items():
        b = opt._iterations[iteration].bracket
        assert len(configs) <= b.num_configs[rung - b.first_rung]
    for it in opt._iterations:
        assert all(a <= n for a, n in zip(it.actual, it.bracket.num_configs, strict=True))


def test_a_closed_stage_promotes_as_many_as_sync_would() -> None:
    # Bracket 27/9/3/1 (budgets 1/3/9/27). 24 of 27 fail at stage 0: 3 configs reach stage 1 and
    # 3 results there give floor(3 / 3) = 1 promotion by the ASHA count. Once stage 1 is closed
    # (nothing can report there again) the sync rule applies: min(3, finite results) = 3 promoted.
    opt = _async(1, 27, seed=0, max_iterations=1)
    stage0 = [_ask(opt) for _ in range(27)]
    for i, s in enumerate(stage0):
        opt.tell(s.trial_id, {4: 0.3, 11: 0.1, 20: 0.2}.get(i))
    stage1 = [_ask(opt) for _ in range(3)]
    assert [s.trial_id for s in stage1] == ["it0-c11-r1", "it0-c20-r1", "it0-c4-r1"]
    assert opt.ask() is None  # no back-fill into stage 1: 9 places, 3 finite candidates
    opt.tell(stage1[0].trial_id, 0.6)
    opt.tell(stage1[1].trial_id, 0.4)
    assert opt.ask() is None  # 2 results, one still running: floor(2 / 3) = 0
    opt.tell(stage1[2].trial_id, 0.5)
    stage2 = [_ask(opt) for _ in range(3)]
    assert [s.trial_id for s in stage2] == ["it0-c20-r2", "it0-c4-r2", "it0-c11-r2"]
    assert opt.ask() is None
    for s, loss in zip(stage2, [0.3, 0.2, None], strict=True):
        opt.tell(s.trial_id, loss)
    last = _ask(opt)
    assert last.trial_id == "it0-c4-r3" and last.budget == 27
    opt.tell(last.trial_id, 0.1)
    assert opt.ask() is None and opt.finished
    assert _async_iterations(opt)[0].actual == [27, 3, 3, 1]


def test_a_closed_stage_with_a_failure_leaves_no_slot_unfilled() -> None:
    # 9/3/1: stage 1 gets its 3 configs, one fails; stage 1 closes with 2 finite results and
    # floor(3 / 3) = 1 slot at stage 2, which is all there is: the best finite one goes up.
    opt = _async(1, 9, seed=0, max_iterations=1)
    for i, s in enumerate([_ask(opt) for _ in range(9)]):
        opt.tell(s.trial_id, float(i))
    stage1 = [_ask(opt) for _ in range(3)]
    opt.tell(stage1[0].trial_id, None)
    opt.tell(stage1[1].trial_id, 0.8)
    assert opt.ask() is None  # 2 results: floor(2 / 3) = 0, and c2 still runs at stage 1
    opt.tell(stage1[2].trial_id, 0.9)
    top = _ask(opt)
    assert top.trial_id == "it0-c1-r2"


def test_one_stage_bracket_and_summary() -> None:
    opt = _async(1, 9, seed=0, max_iterations=3)  # iteration 2 is the bracket of 3 at budget 9
    _, asked = simulate(opt, workers=5)
    assert opt.finished
    assert [s.rung for s in asked if s.iteration == 2] == [2, 2, 2]
    summary = opt.summary()
    assert [it["stage"] for it in summary["iterations"]] == [2, 1, 0]
    assert [it["sampled"] for it in summary["iterations"]] == [[9, 3, 1], [3, 1], [3]]
    assert all(it["finished"] for it in summary["iterations"])
    assert summary["iterations"][0]["states"][COMPLETED] == 9
    json.dumps(opt.state_dict(), allow_nan=False)


# ---- the optimiser -------------------------------------------------------------------------------
def test_max_iterations_finishes_with_the_incumbent_at_the_max_budget() -> None:
    opt = _async(1, 81, seed=2, max_iterations=5)
    _, asked = simulate(opt, workers=8)
    assert opt.finished and opt.ask() is None and not opt.pending()
    inc = opt.incumbent()
    assert inc is not None and inc.budget == 81
    assert len(asked) == (81 + 27 + 9 + 3 + 1) + (27 + 9 + 3 + 1) + (9 + 3 + 1) + (6 + 2) + 5


@pytest.mark.parametrize("workers", [1, 10, 40])
def test_same_totals_as_sync_without_failures(workers: int) -> None:
    for promotion in ("sync", "async"):
        opt = BOHB(counting_ones_space(), 9, 729, seed=0, max_iterations=10, promotion=promotion)
        _, asked = simulate(opt, workers=workers)
        assert opt.finished
        assert len(asked) == 2 * (121 + 40 + 13 + 8 + 5)
        for it in opt._iterations:
            assert it.actual == list(it.bracket.num_configs)
            ran = [sum(str(k) in r.losses for r in it.runs) for k in range(it.last_stage + 1)]
            assert ran == list(it.bracket.num_configs)


def test_promotion_knob_is_validated_saved_and_restored() -> None:
    space = counting_ones_space()
    with pytest.raises(ValueError, match=r"promotion \('asha'\) must be 'sync' or 'async'"):
        BOHB(space, 1, 9, promotion="asha")  # type: ignore[arg-type]
    sync, asy = BOHB(space, 1, 9), BOHB(space, 1, 9, promotion="async")
    assert sync.promotion == "sync" and sync.state_dict()["args"]["promotion"] == "sync"
    for opt in (sync, asy):
        for _ in range(4):
            _ask(opt)
    state = json.loads(json.dumps(asy.state_dict()))
    assert state["args"]["promotion"] == "async"
    restored = BOHB.from_state_dict(state)
    assert restored.promotion == "async"
    assert all(isinstance(it, AsyncSHIteration) for it in restored._iterations)
    old = json.loads(json.dumps(sync.state_dict()))
    del old["args"]["promotion"]  # written before the knob existed
    restored = BOHB.from_state_dict(old)
    assert restored.promotion == "sync"
    assert all(isinstance(it, SHIteration) for it in restored._iterations)
    assert restored.ask() == sync.ask()


def test_async_iteration_state_round_trip() -> None:
    opt = _async(1, 9, seed=0, max_iterations=1)
    stage0 = [_ask(opt) for _ in range(9)]
    for i, s in enumerate(stage0[:6]):
        opt.tell(s.trial_id, None if i == 2 else float(i))
    _ask(opt)
    it = _async_iterations(opt)[0]
    state = json.loads(json.dumps(it.state_dict()))
    copy = AsyncSHIteration.from_state_dict(it.bracket, state)
    assert copy == it and copy.eta == 3.0
    assert (
        copy.counts()
        == it.counts()
        == {
            "queued": 0,
            "running": 4,  # 3 at stage 0, 1 at stage 1
            "review": 4,
            "crashed": 1,
            "terminated": 0,
            "completed": 0,
        }
    )
    with pytest.raises(ValueError, match="eta"):
        AsyncSHIteration(it.bracket, 1.0)


# ---- properties ----------------------------------------------------------------------------------
# One step: ("ask", _, _) = an idle worker asks (skipped when all workers are busy), or
# ("tell", which pending trial, loss) with loss < 0.15 meaning a failed run.
steps = st.lists(
    st.tuples(st.sampled_from(["ask", "ask", "tell"]), st.integers(0, 63), st.floats(0, 1)),
    min_size=20,
    max_size=250,
)


def _step(opt: BOHB, workers: int, step: tuple[str, int, float]) -> Suggestion | str | None:
    action, pick, loss = step
    pending = opt.pending()
    if action == "ask":
        if len(pending) >= workers:
            return "busy"
        s = opt.ask()
        assert s is not None, "an idle worker got no work with max_iterations=None"
        return s
    if pending:
        opt.tell(pending[pick % len(pending)], None if loss < 0.15 else loss)
    return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    workers=st.integers(1, 24),
    plan=steps,
    cut=st.floats(0, 1),
)
def test_idle_workers_always_get_work_and_resume_is_exact(
    seed: int, workers: int, plan: list[tuple[str, int, float]], cut: float
) -> None:
    opt = BOHB(counting_ones_space(2, 2), 1, 27, seed=seed, random_fraction=0.2, promotion="async")
    cut_at = int(cut * len(plan))
    clone: BOHB | None = None
    out: list[Suggestion | str | None] = []
    clone_out: list[Suggestion | str | None] = []
    for i, step in enumerate(plan):
        if i == cut_at:  # a controller restart: JSON snapshot, fresh object, same future calls
            snapshot = json.loads(json.dumps(opt.state_dict(), allow_nan=False))
            clone = BOHB.from_state_dict(snapshot)
        out.append(_step(opt, workers, step))
        if clone is not None:
            clone_out.append(_step(clone, workers, step))
    if clone is not None:
        assert clone_out == out[cut_at:]  # trial ids, configs, budgets, model_based
        assert clone.state_dict() == opt.state_dict()
    for it in opt._iterations:
        assert all(a <= n for a, n in zip(it.actual, it.bracket.num_configs, strict=True))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    workers=st.integers(1, 16),
    max_iterations=st.integers(1, 6),
    order_seed=st.integers(0, 2**31),
)
def test_without_failures_every_iteration_runs_num_configs_per_stage(
    seed: int, workers: int, max_iterations: int, order_seed: int
) -> None:
    opt = BOHB(
        counting_ones_space(2, 2),
        1,
        27,
        seed=seed,
        max_iterations=max_iterations,
        promotion="async",
    )
    rng = np.random.default_rng(order_seed)  # which running trial reports next, and its loss
    while True:
        while len(opt.pending()) < workers and (s := opt.ask()) is not None:
            assert s.budget == opt.budgets[s.rung]
        pending = opt.pending()
        if not pending:
            break
        opt.tell(pending[int(rng.integers(len(pending)))], float(rng.random()))
    assert opt.finished and opt.ask() is None
    assert len(opt._iterations) == max_iterations
    for it in opt._iterations:
        assert it.complete and it.actual == list(it.bracket.num_configs)
        ran = [sum(str(k) in r.losses for r in it.runs) for k in range(it.last_stage + 1)]
        assert ran == list(it.bracket.num_configs)
        assert it.counts()[COMPLETED] == it.bracket.num_configs[0]
    inc = opt.incumbent()
    assert inc is not None and inc.budget == 27


# ---- sync mode unchanged -------------------------------------------------------------------------
def _drive(opt: BOHB, n: int, workers: int = 5) -> list[dict[str, Any]]:
    """The fixed ask/tell pattern of tests/data/bohb_sync_sequence.json: ask while fewer than
    `workers` trials run, then tell pending[(3 * told) % len(pending)] with a loss computed from
    its config (a failure every 7th tell, and two tells in three above the lowest rung, so that
    stages run short and sync back-fills); the first `n` suggestions."""
    out: list[dict[str, Any]] = []
    told = 0
    while len(out) < n:
        while len(opt.pending()) < workers and len(out) < n:
            s = opt.ask()
            if s is None:
                break
            out.append(
                {
                    "trial_id": s.trial_id,
                    "config": s.config,
                    "budget": s.budget,
                    "model_based": s.model_based,
                }
            )
        pending = opt.pending()
        if not pending:
            break
        trial_id = pending[(3 * told) % len(pending)]
        told += 1
        rung = int(trial_id.rsplit("-r", 1)[1])
        cfg = next(o["config"] for o in reversed(out) if o["trial_id"] == trial_id)
        failed = told % 7 == 0 or (rung > 0 and told % 3 != 0)
        loss = None if failed else -sum(cfg.values()) / (1 + rung) + 0.01 * (told % 5)
        opt.tell(trial_id, loss)
    return out


def test_sync_mode_reproduces_the_recorded_sequence() -> None:
    # tests/data/bohb_sync_sequence.json was produced by this `_drive` (same code, verbatim) run
    # against controller/bohb as of commit bd4124b, before promotion="async" existed: that tree
    # was copied to /tmp and imported from there through sys.path, and the suggestions dumped
    # with json (floats round-trip exactly). It holds the first 60 suggestions of
    # BOHB(counting_ones_space(), 1, 81, seed=3) (28 model-based, all of bracket 0's stage 0) and
    # the first 150 of BOHB(counting_ones_space(), 1, 9, seed=3) (promotions, failures,
    # 8 back-fills, 23 brackets, 61 model-based). "same code, verbatim" up to formatting: the
    # generator wrote `-(sum(v for v in cfg.values()))`, the same number as `-sum(cfg.values())`.
    recorded = json.loads(SYNC_SEQUENCE.read_text())["sequences"]
    assert [(r["min_budget"], r["max_budget"], r["seed"]) for r in recorded] == [
        (1, 81, 3),
        (1, 9, 3),
    ]
    for r in recorded:
        args = (counting_ones_space(), r["min_budget"], r["max_budget"])
        for opt in (BOHB(*args, seed=r["seed"]), BOHB(*args, seed=r["seed"], promotion="sync")):
            got = _drive(opt, r["n"])
            assert len(got) == r["n"]
            assert got == r["suggestions"]
