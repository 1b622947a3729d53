"""BOHB ask/tell: HpBandSter's scheduling, model thresholds, errors, determinism and resume."""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
from typing import Any

import numpy as np
import pytest

from controller.bohb import BOHB, AlreadyTold, Suggestion, UnknownTrial
from controller.bohb.model import ConfigGenerator, ModelKnobs
from controller.bohb.space import SearchSpace


def counting_ones_space(n_cat: int = 4, n_cont: int = 4) -> SearchSpace:
    params: list[dict[str, Any]] = [
        {"name": f"cat_{i}", "type": "categorical", "choices": [0, 1]} for i in range(n_cat)
    ]
    params += [{"name": f"float_{i}", "type": "float", "low": 0, "high": 1} for i in range(n_cont)]
    return SearchSpace.model_validate({"parameters": params})


def counting_ones_loss(s: Suggestion, rng: np.random.Generator) -> float:
    draws = int(s.budget)
    noisy = [rng.binomial(draws, v) / draws for k, v in s.config.items() if k.startswith("float")]
    return -float(sum(v for k, v in s.config.items() if k.startswith("cat")) + sum(noisy))


def simulate(opt: BOHB, workers: int, seed: int = 0) -> tuple[int, list[Suggestion]]:
    """Discrete-event run with `workers` workers, each job lasting its budget (plus jitter).

    Returns the most iterations active at once and every suggestion in ask order."""
    rng = np.random.default_rng(seed)
    running: list[tuple[float, int, str, float]] = []
    now, seq, most_active, asked = 0.0, 0, 0, []
    while True:
        while len(running) < workers:
            s = opt.ask()
            if s is None:
                break
            asked.append(s)
            seq += 1
            loss = counting_ones_loss(s, rng)
            done_at = now + s.budget * (1 + 0.1 * rng.random())
            heapq.heappush(running, (done_at, seq, s.trial_id, loss))
        assert len(opt.pending()) <= workers
        most_active = max(most_active, opt.summary()["active_iterations"])
        if not running:
            return most_active, asked
        now, _, trial_id, loss = heapq.heappop(running)
        opt.tell(trial_id, loss)


def test_sequential_trace_is_stage_by_stage_then_next_bracket() -> None:
    opt = BOHB(counting_ones_space(), 1, 9, eta=3, seed=0, max_iterations=3)
    _, asked = simulate(opt, workers=1)
    assert [s.budget for s in asked] == [1] * 9 + [3] * 3 + [9] + [3] * 3 + [9] + [9] * 3
    assert [s.trial_id for s in asked[:2]] == ["it0-c0-r0", "it0-c1-r0"]
    assert asked[9].trial_id.endswith("-r1") and asked[9].config_id.startswith("it0-c")
    promoted = {s.config_id for s in asked[:9]}
    assert {s.config_id for s in asked[9:13]} <= promoted  # promotions keep their config id
    assert asked[13].trial_id == "it1-c0-r1"
    assert opt.finished and opt.ask() is None


def test_trial_ids_are_dns_safe_and_unique() -> None:
    opt = BOHB(counting_ones_space(), 9, 729, seed=1, max_iterations=5)
    _, asked = simulate(opt, workers=4)
    ids = [s.trial_id for s in asked]
    assert len(set(ids)) == len(ids)
    assert all(t.islower() and t.replace("-", "").isalnum() and len(t) <= 63 for t in ids)
    for s in asked:
        assert s.trial_id == f"{s.config_id}-r{s.rung}" and s.budget == opt.budgets[s.rung]
        assert s.config_id.startswith(f"it{s.iteration}-c")


def test_idle_workers_fill_the_oldest_iteration_first() -> None:
    opt = BOHB(counting_ones_space(), 1, 81, seed=0, max_iterations=3)
    asked = [s for s in (opt.ask() for _ in range(100)) if s is not None]  # 100 idle workers
    assert len(asked) == 100  # no results yet, and every worker got a trial
    assert [s.iteration for s in asked] == [0] * 81 + [1] * 19
    assert opt.summary()["active_iterations"] == 2
    more = [opt.ask() for _ in range(30)]
    assert sum(s is not None for s in more) == 8 + 9  # rest of it1 (27), all of it2 (9)
    assert opt.ask() is None  # max_iterations reached and everything waits for results
    # Results for iteration 0's first stage: its next stage goes before iteration 2's work.
    rng = np.random.default_rng(0)
    for s in asked[:81]:
        opt.tell(s.trial_id, counting_ones_loss(s, rng))
    nxt = opt.ask()
    assert nxt is not None and (nxt.iteration, nxt.rung) == (0, 1)


@pytest.mark.parametrize(("workers", "expected"), [(1, (1, 1)), (10, (2, 6))])
def test_concurrent_iterations_like_hpbandster(workers: int, expected: tuple[int, int]) -> None:
    # Spec §3: one worker runs one bracket at a time; 10 workers on counting ones 9..729 had up
    # to 6 brackets active at once in the reference simulation.
    opt = BOHB(counting_ones_space(), 9, 729, seed=0, max_iterations=10)
    most_active, asked = simulate(opt, workers=workers)
    assert expected[0] <= most_active <= expected[1]
    assert opt.finished
    assert len(asked) == 2 * (121 + 40 + 13 + 8 + 5)  # two rounds of (81..1, 27..1, 9..1, 6..2, 5)


def test_first_model_after_two_times_d_plus_one_results() -> None:
    space = counting_ones_space()  # d = 8, N_min = 9
    opt = BOHB(space, 1, 1, seed=0, random_fraction=0.0)
    rng = np.random.default_rng(0)
    for n in range(1, 19):
        s = opt.ask()
        assert s is not None and not s.model_based
        opt.tell(s.trial_id, counting_ones_loss(s, rng))
        assert (opt.summary()["model_budget"] is not None) == (n >= 18)
    s = opt.ask()
    assert s is not None and s.model_based


def test_zela2018_first_model_on_the_36th_result() -> None:
    space = SearchSpace.builtin("zela2018")
    gen = ConfigGenerator(space, 1, ModelKnobs(18, 15, 64, 1 / 3, 3.0, 1e-3), seed=0)
    rng = np.random.default_rng(0)
    for n in range(1, 37):
        gen.observe(0, space.sample_vector(rng), float(rng.random()))
        assert (gen.model_rung() is not None) == (n >= 36)


def test_results_below_the_largest_modelled_budget_are_dropped() -> None:
    space = counting_ones_space()
    gen = ConfigGenerator(space, 2, ModelKnobs(9, 15, 64, 1 / 3, 3.0, 1e-3), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(18):
        assert gen.observe(1, space.sample_vector(rng), float(rng.random()))
    assert gen.model_rung() == 1
    assert not gen.observe(0, space.sample_vector(rng), 0.0)
    assert gen.obs[0].n == 0
    config, _ = gen.propose(np.random.default_rng(1))
    assert space.validate_config(config) == config


def test_failed_trials_are_never_promoted_and_are_back_filled() -> None:
    opt = BOHB(counting_ones_space(), 1, 9, seed=0, max_iterations=1)
    first = [opt.ask() for _ in range(9)]
    for i, s in enumerate(first):
        assert s is not None
        opt.tell(s.trial_id, [None, math.nan, math.inf, -math.inf][i] if i < 4 else float(i))
    second = [opt.ask() for _ in range(3)]
    ids = [s.trial_id for s in second]  # type: ignore[union-attr]
    assert ids == ["it0-c4-r1", "it0-c5-r1", "it0-c6-r1"]  # the 4 failed runs were not ranked
    for s in second:
        opt.tell(s.trial_id, None)  # type: ignore[union-attr]
    backfill = opt.ask()
    # Nobody survived stage 1: a new config is sampled and run directly at the last budget.
    assert backfill is not None and backfill.trial_id == "it0-c9-r2" and backfill.budget == 9


def test_tell_errors_name_the_trial() -> None:
    opt = BOHB(counting_ones_space(), 1, 9, seed=0)
    s = opt.ask()
    assert s is not None
    with pytest.raises(UnknownTrial, match="it9-c9-r9"):
        opt.tell("it9-c9-r9", 0.1)
    with pytest.raises(KeyError):
        opt.tell("nope", 0.1)
    opt.tell(s.trial_id, 0.5)
    with pytest.raises(AlreadyTold, match=s.trial_id):
        opt.tell(s.trial_id, 0.4)
    with pytest.raises(ValueError, match="already told"):
        opt.tell(s.trial_id, 0.4)
    s2 = opt.ask()
    assert s2 is not None
    with pytest.raises(TypeError, match=s2.trial_id):
        opt.tell(s2.trial_id, "0.3")  # type: ignore[arg-type]
    assert opt.pending() == [s2.trial_id]


def test_incumbent_is_best_at_the_largest_budget_with_a_result() -> None:
    opt = BOHB(counting_ones_space(), 1, 9, seed=0, max_iterations=1)
    assert opt.incumbent() is None
    stage0 = [opt.ask() for _ in range(9)]
    for i, s in enumerate(stage0):
        opt.tell(s.trial_id, 1.0 - i / 10)  # type: ignore[union-attr]
    inc = opt.incumbent()
    assert inc is not None and inc.budget == 1 and inc.loss == pytest.approx(0.2)
    promoted = [opt.ask() for _ in range(3)]  # in HpBandSter's insertion order, not by rank
    assert [s.config_id for s in promoted] == ["it0-c6", "it0-c7", "it0-c8"]  # type: ignore[union-attr]
    assert inc.config_id == "it0-c8"
    opt.tell(promoted[0].trial_id, 5.0)  # type: ignore[union-attr]
    opt.tell(promoted[1].trial_id, None)  # type: ignore[union-attr]
    inc = opt.incumbent()
    assert inc is not None and (inc.budget, inc.loss) == (3, 5.0)
    assert inc.trial_id == promoted[0].trial_id  # type: ignore[union-attr]


def test_same_seed_same_calls_same_suggestions_and_resume_is_exact() -> None:
    def run(opt: BOHB, snapshot_at: int | None) -> list[Suggestion]:
        rng = np.random.default_rng(7)
        out: list[Suggestion] = []
        for step in range(400):
            if step == snapshot_at:
                opt = BOHB.from_state_dict(json.loads(json.dumps(opt.state_dict())))
            s = opt.ask()
            assert s is not None
            out.append(s)
            if step % 3 != 2:  # leave some trials running, tell them later in another order
                for trial_id in opt.pending()[::-1]:
                    opt.tell(trial_id, float(rng.random()) if rng.random() > 0.1 else None)
        return out

    base = run(BOHB(counting_ones_space(), 1, 27, seed=3), None)
    assert sum(s.model_based for s in base) > 50  # the model was used
    assert run(BOHB(counting_ones_space(), 1, 27, seed=3), None) == base
    assert run(BOHB(counting_ones_space(), 1, 27, seed=3), 250) == base
    assert run(BOHB(counting_ones_space(), 1, 27, seed=4), None) != base


def test_summary_and_state_are_json() -> None:
    opt = BOHB(counting_ones_space(), 9, 729, seed=0, max_iterations=2)
    simulate(opt, workers=3)
    summary = json.loads(json.dumps(opt.summary(), allow_nan=False))
    assert summary["finished"] and summary["iterations"][0]["states"]["completed"] == 81
    json.dumps(opt.state_dict(), allow_nan=False)


def test_iteration_state_is_every_field_of_every_run_and_a_copy() -> None:
    opt = BOHB(counting_ones_space(), 9, 729, seed=0, max_iterations=2)
    simulate(opt, workers=3)
    runs = [run for it in opt._iterations for run in it.runs]
    assert runs and all(run.state_dict() == dataclasses.asdict(run) for run in runs)
    before = json.dumps(opt.state_dict())
    for it in opt.state_dict()["iterations"]:
        for run in it["runs"]:
            run["config"].clear()
            run["losses"]["0"] = -1.0
    assert json.dumps(opt.state_dict()) == before  # the snapshot shares nothing mutable


def test_constructor_rejects_bad_knobs() -> None:
    space = counting_ones_space()
    for kwargs in ({"max_iterations": 0}, {"random_fraction": 2}, {"top_n_percent": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            BOHB(space, 1, 9, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_budget"):
        BOHB(space, 10, 9)


def test_the_model_sets_the_knobs_defaults_and_a_knob_given_wins() -> None:
    space = counting_ones_space()
    faithful, kubohb = BOHB(space, 1, 9), BOHB(space, 1, 9, model="kubohb")
    f, k = faithful.knobs, kubohb.knobs
    assert faithful.model == "faithful"
    assert (f.random_fraction, f.num_samples, f.bandwidth_factor) == (1 / 3, 64, 3.0)
    assert (k.random_fraction, k.num_samples, k.bandwidth_factor) == (0.0, 64, 3.0)
    assert BOHB(space, 1, 9, model="kubohb", random_fraction=0.5).knobs.random_fraction == 0.5
    given = BOHB(space, 1, 9, model="kubohb", num_samples=32, bandwidth_factor=2.0).knobs
    assert (given.num_samples, given.bandwidth_factor) == (32, 2.0)
    # The state holds the model and every knob it resolved; a state written before the model
    # existed restores as HpBandSter's with its own knobs.
    state = kubohb.state_dict()
    assert state["args"]["model"] == "kubohb" and state["args"]["random_fraction"] == 0.0
    restored = BOHB.from_state_dict(state)
    assert (restored.model, restored.knobs) == ("kubohb", kubohb.knobs)
    old = faithful.state_dict()
    del old["args"]["model"]
    assert BOHB.from_state_dict(old).knobs == faithful.knobs
    with pytest.raises(ValueError, match=r"model \('tpe'\) must be one of faithful, kubohb"):
        BOHB(space, 1, 9, model="tpe")  # type: ignore[arg-type]


def test_with_the_kubohb_model_every_config_after_the_first_model_is_model_based() -> None:
    opt = BOHB(counting_ones_space(), 1, 1, seed=3, model="kubohb")
    picks = []
    for i in range(60):
        s = opt.ask()
        assert s is not None
        picks.append(s.model_based)
        opt.tell(s.trial_id, float(i % 7))
    first = picks.index(True)
    assert first > 0 and all(picks[first:])


def test_on_a_conditional_space_kubohb_keeps_the_random_third_and_scores_marginally() -> None:
    space = SearchSpace.model_validate(
        {
            "parameters": [
                {"name": "opt", "type": "categorical", "choices": ["sgd", "adam"]},
                {"name": "momentum", "type": "float", "low": 0, "high": 1,
                 "active_if": {"opt": ["sgd"]}},
            ]
        }
    )  # fmt: skip
    kubohb = BOHB(space, 1, 9, model="kubohb").knobs
    assert kubohb.random_fraction == 1 / 3 and kubohb.marginal
    assert BOHB(space, 1, 9, model="kubohb", random_fraction=0).knobs.random_fraction == 0
    assert not BOHB(space, 1, 9, model="kubohb", marginal=False).knobs.marginal
    assert not BOHB(space, 1, 9).knobs.marginal  # faithful: HpBandSter scores whole vectors
    assert not BOHB(counting_ones_space(), 1, 9, model="kubohb").knobs.marginal  # nothing to drop
