"""``bohb.promotion_resume`` end to end on the simulator (the real scheduler and BOHB in virtual
time): promotions continue the rung below and are charged the increment only; the search itself
is unchanged, and a promotion whose lower result is missing trains from scratch."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from controller.backends.base import Launch
from controller.backends.simulated import SimulatedBackend, SyntheticObjective
from controller.bohb import trial_id_of
from controller.sweep.spec import SweepSpec, parse_sweep
from tests.controller.test_cluster_time import run, sim_spec, state_of
from trainer.contract import TrialResult
from trainer.store.memory import MemoryStore


def sweep(resume: bool, promotion: str = "sync", **over: Any) -> dict[str, Any]:
    return sim_spec(
        bohb={"seed": 3, "promotion": promotion, "promotion_resume": resume},
        stop={"max_iterations": 3},
        backend={"type": "simulated", "simulated": {"gpus": 8, "seed": 1}},
        **over,
    )


def parsed(spec: dict[str, Any]) -> SweepSpec:
    return parse_sweep(yaml.safe_dump(spec))


@pytest.mark.parametrize("promotion", ["sync", "async"])
def test_promotions_are_charged_the_increment_and_find_the_same_results(promotion: str) -> None:
    runs = {}
    for resume in (False, True):
        store = MemoryStore()
        outcome = run(sweep(resume, promotion), store)
        assert outcome.reason == "max_iterations"
        runs[resume] = (state_of(store), store)
    scratch, (resumed, store) = runs[False][0], runs[True]
    spec = parsed(sweep(True, promotion))
    budgets, startup_s = spec.budgets(), spec.backend.simulated.startup_s
    promoted = 0
    for tid, t in resumed.trials.items():
        lower = scratch.trials.get(trial_id_of(str(t.config_id), t.rung - 1))
        if lower is None:  # a bracket's first stage: from scratch in both runs
            assert t.continues is None
            expected = t.budget
        else:
            promoted += 1
            assert t.continues == lower.trial_id
            expected = t.budget - budgets[t.rung - 1]
            result = TrialResult.model_validate_json(store.get(f"sim/trials/{tid}/result.json"))
            assert result.info.continued_from == lower.trial_id
        assert t.state == "SUCCEEDED"
        # charged what ran: the pod start and the training the trial did
        assert t.gpu_seconds == pytest.approx(expected + startup_s)
    assert promoted > 0
    if promotion == "sync":  # the same losses in the same order: BOHB decides the same
        assert {k: t.loss for k, t in resumed.trials.items()} == {
            k: t.loss for k, t in scratch.trials.items()
        }
        saved = sum(budgets[t.rung - 1] for t in resumed.trials.values() if t.continues)
        assert scratch.gpu_seconds - resumed.gpu_seconds == pytest.approx(saved)


def test_without_a_lower_result_the_simulated_promotion_trains_from_scratch() -> None:
    store = MemoryStore()
    spec = sweep(True)
    outcome = run(spec, store)
    assert outcome.reason == "max_iterations"
    state = state_of(store)
    t = next(t for t in state.trials.values() if t.continues)
    # the same launch on a simulator that never ran the lower trial: the whole budget
    options = parsed(spec)
    fresh = SimulatedBackend(
        "sim", store, options.backend.simulated, objective=SyntheticObjective()
    )
    fresh.launch(
        Launch(
            sweep="sim",
            trial_id="again",
            trial_url=store.url(f"sim/trials/{t.trial_id}/trial.json"),
            rung=t.rung,
            resources=options.trainer.resources,
            deadline_s=t.deadline_s,
        )
    )
    assert fresh.history[-1].train_total_s == t.budget
