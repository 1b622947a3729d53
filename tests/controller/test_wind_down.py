"""Winding down at a cap, on the simulator: a capped sweep still ends with a max-budget incumbent
where the cap allows one, instead of many brackets cut off at their lower rungs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from controller.sweep.estimate import estimate
from controller.sweep.runner import Outcome, run_sweep
from controller.sweep.spec import parse_sweep
from tests.sweeps import REPO
from trainer.store.memory import MemoryStore

FULL = yaml.safe_load((REPO / "docs" / "examples" / "full.yaml").read_text())
NOMINAL = estimate(parse_sweep(yaml.safe_dump(FULL)), run_simulation=False).gpu_hours_nominal


def _capped(fraction: float, wind_down: bool, promotion: str = "sync") -> Outcome:
    """docs/examples/full.yaml (8 brackets) on the simulator, capped at a fraction of its
    nominal estimate; its 16 GPUs run several brackets at once."""
    spec: dict[str, Any] = copy.deepcopy(FULL)
    spec["stop"] = {
        "max_iterations": 8,
        "max_gpu_hours": fraction * NOMINAL,
        "wind_down": wind_down,
    }
    spec["bohb"]["promotion"] = promotion
    spe = [FULL["cost"]["classes"]["l4-spot"]["seconds_per_epoch"], 120, 120, 120]
    spec["backend"] = {
        "type": "simulated",
        "simulated": {"gpus": 16, "seconds_per_epoch": 120, "rung_seconds_per_epoch": spe},
    }
    text = yaml.safe_dump(spec)
    return run_sweep(parse_sweep(text), text, store=MemoryStore("capped"))


def _top_results(outcome: Outcome) -> int:
    return sum(
        t.state == "SUCCEEDED" and t.budget == FULL["budget"]["max"]
        for t in outcome.state.trials.values()
    )


@pytest.mark.parametrize("promotion", ["sync", "async"])
def test_a_sweep_capped_at_60_percent_of_its_estimate_ends_with_a_max_budget_incumbent(
    promotion: str,
) -> None:
    outcome = _capped(0.6, wind_down=True, promotion=promotion)
    assert outcome.reason == "max_gpu_hours" and outcome.exit_code == 3
    incumbent = outcome.state.incumbent
    assert incumbent is not None and incumbent["budget"] == FULL["budget"]["max"]
    assert outcome.state.gpu_seconds / 3600 <= 0.6 * NOMINAL * 1.01
    # every bracket that started carried its best config to the largest budget
    started = {t.iteration for t in outcome.state.trials.values()}
    topped = {
        t.iteration
        for t in outcome.state.trials.values()
        if t.state == "SUCCEEDED" and t.budget == FULL["budget"]["max"]
    }
    assert topped == started


@pytest.mark.parametrize("promotion", ["sync", "async"])
def test_a_tight_cap_gets_a_max_budget_result_only_by_winding_down(promotion: str) -> None:
    """At 15 % of the estimate the brackets running side by side spend the cap on their lower
    rungs: without the wind-down no trial reaches the largest budget."""
    without = _capped(0.15, wind_down=False, promotion=promotion)
    with_it = _capped(0.15, wind_down=True, promotion=promotion)
    assert _top_results(without) == 0
    assert without.state.incumbent is not None
    assert without.state.incumbent["budget"] < FULL["budget"]["max"]
    assert _top_results(with_it) >= 1
    assert with_it.state.incumbent is not None
    assert with_it.state.incumbent["budget"] == FULL["budget"]["max"]
    assert with_it.reason == "max_gpu_hours"
