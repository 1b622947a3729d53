"""`kubohb estimate`: the schedule priced before anything runs, checked against the sweep itself
run on the simulator (an independent run through `run_sweep`, not the estimate's own)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.sweep.estimate import estimate
from controller.sweep.runner import run_sweep
from controller.sweep.spec import parse_sweep
from tests.sweeps import REPO, kubohb
from trainer.store.memory import MemoryStore

FULL = yaml.safe_load((REPO / "docs" / "examples" / "full.yaml").read_text())


def _simulated(spec: dict[str, Any]) -> Any:
    """The same sweep run as a user would on the simulator (`backend.type: simulated`, one slot
    per trial, epochs at seconds_per_epoch): the sweep's outcome."""
    sim = copy.deepcopy(spec)
    default_spe = spec["trials"]["seconds_per_epoch"]
    per_rung = [default_spe] * 4  # budgets 3.7 .. 100 epochs at eta 3
    for c in spec.get("cost", {}).get("classes", {}).values():
        for rung in c["rungs"]:
            per_rung[rung] = c.get("seconds_per_epoch", default_spe)
    sim["backend"] = {
        "type": "simulated",
        "simulated": {
            "gpus": spec["parallelism"] * spec["trainer"]["resources"]["gpus"],
            "seconds_per_epoch": default_spe,
            "rung_seconds_per_epoch": per_rung,
        },
    }
    text = yaml.safe_dump(sim)
    return run_sweep(parse_sweep(text), text, store=MemoryStore("reference"))


def test_the_full_example_is_priced_as_the_simulated_run_spends() -> None:
    e = estimate(parse_sweep(yaml.safe_dump(FULL)))
    outcome = _simulated(FULL)
    ran = outcome.state
    assert outcome.reason == "max_iterations"
    assert e.trials == len(ran.trials) == 130  # the count, worked out by hand
    assert e.gpu_hours_nominal == pytest.approx(ran.gpu_seconds / 3600, rel=0.10)
    assert e.cost_nominal == pytest.approx(ran.cost, rel=0.10)
    # per device class (rung 0 on L4 spot, the rest at the default price), from the run's trials
    classes = FULL["cost"]["classes"]
    assert set(e.by_class) == {*classes, "default"}
    for name, c in e.by_class.items():
        rungs = classes[name]["rungs"] if name in classes else [1, 2, 3]
        price = classes[name]["price"] if name in classes else FULL["stop"]["gpu_hour_price"]
        ran_s = sum(t.gpu_seconds for t in ran.trials.values() if t.rung in rungs)
        assert c.rungs == rungs and c.price == price
        assert c.gpu_hours_nominal == pytest.approx(ran_s / 3600, rel=0.10)
        assert c.cost_nominal == pytest.approx(ran_s / 3600 * price, rel=0.10)
    assert sum(c.cost_nominal for c in e.by_class.values()) == pytest.approx(e.cost_nominal)
    assert e.gpu_hours_nominal < e.gpu_hours_worst < 2.5 * e.gpu_hours_nominal
    assert e.cap == "max_gpu_hours" and e.cap_gpu_hours == 200
    # per rung: every trial of the run is in the schedule at its budget
    for row_budget in {r.budget for r in e.rungs}:
        scheduled = sum(r.trials for r in e.rungs if r.budget == row_budget)
        assert scheduled == sum(t.budget == row_budget for t in ran.trials.values())
    assert e.simulated is not None and e.simulated.trials == 130
    assert e.simulated.first_max_budget_result_s is not None
    assert 0 < e.simulated.first_max_budget_result_s < e.simulated.wall_clock_s
    assert not e.warnings


def test_with_promotion_resume_the_estimate_prices_promotions_at_their_increment() -> None:
    spec = copy.deepcopy(FULL)
    spec["bohb"] = {**spec.get("bohb", {}), "promotion_resume": True}
    e, scratch = (
        estimate(parse_sweep(yaml.safe_dump(spec))),
        estimate(parse_sweep(yaml.safe_dump(FULL))),
    )
    outcome = _simulated(spec)
    ran = outcome.state
    assert outcome.reason == "max_iterations"
    assert sum(t.continues is not None for t in ran.trials.values()) > 0
    assert e.gpu_hours_nominal == pytest.approx(ran.gpu_seconds / 3600, rel=0.10)
    assert e.cost_nominal == pytest.approx(ran.cost, rel=0.10)
    assert e.gpu_hours_nominal < 0.9 * scratch.gpu_hours_nominal
    # the worst case is a promotion that finds no checkpoint: the whole budget's deadline
    assert e.gpu_hours_worst == pytest.approx(scratch.gpu_hours_worst)


def test_a_cap_below_the_first_bracket_is_warned_of() -> None:
    spec = copy.deepcopy(FULL)
    spec["stop"] = {"max_gpu_hours": 10, "gpu_hour_price": 1.8}
    e = estimate(parse_sweep(yaml.safe_dump(spec)))
    first_bracket = sum(r.gpu_hours_nominal for r in e.rungs if r.bracket == 0)
    assert first_bracket > 10
    assert e.open_ended and e.simulated is not None
    assert e.simulated.stop_reason == "max_gpu_hours"
    assert e.simulated.gpu_hours <= 10 * 1.01  # a cap passes by one poll at most
    assert e.warnings == [
        f"max_gpu_hours (10.0 device-hours) is less than the first bracket's {first_bracket:.1f}"
        ": the first bracket is cut down to fit (stop.wind_down)"
    ]
    # the wind-down carries the cut-down bracket to the top; without it no trial gets there
    assert e.simulated.first_max_budget_result_s is not None
    spec["stop"]["wind_down"] = False
    without = estimate(parse_sweep(yaml.safe_dump(spec)))
    assert without.simulated is not None and without.simulated.first_max_budget_result_s is None
    assert without.warnings[0].endswith(
        "the sweep stops before its first result on the largest budget (100 epochs)"
    )


def test_a_cap_that_parallel_brackets_exhaust_is_found_by_the_simulation() -> None:
    """Above the first bracket's cost, but 16 GPUs run several brackets at once: only the
    simulation sees that no result on the largest budget comes before the cap."""
    spec = copy.deepcopy(FULL)
    spec["stop"] = {"max_gpu_hours": 25, "wind_down": False}  # with it, it would get one
    e = estimate(parse_sweep(yaml.safe_dump(spec)))
    assert e.simulated is not None and e.simulated.first_max_budget_result_s is None
    assert e.warnings == [
        "simulated: stopped by max_gpu_hours before any result on the largest budget (100 epochs)"
    ]


def test_a_sweep_stopped_by_its_deadline_alone_lists_one_cycle_and_simulates_the_rest() -> None:
    spec = copy.deepcopy(FULL)
    spec["stop"] = {"deadline": "12h"}
    e = estimate(parse_sweep(yaml.safe_dump(spec)))
    assert e.open_ended and e.brackets == 4  # one bracket per budget
    assert e.simulated is not None and e.simulated.stop_reason == "deadline"
    assert e.simulated.wall_clock_s <= 12 * 3600 + 600


def test_validate_prints_the_summary_and_estimate_prints_json(tmp_path: Path) -> None:
    spec = copy.deepcopy(FULL)
    spec["stop"] = {"max_iterations": 4, "max_gpu_hours": 5}
    path = tmp_path / "capped.yaml"
    path.write_text(yaml.safe_dump(spec))
    trials = estimate(parse_sweep(yaml.safe_dump(spec)), run_simulation=False).trials
    checked = kubohb("validate", str(path))
    assert checked.returncode == 0, checked.stderr
    assert f"estimate: {trials} trials in 4 brackets" in checked.stdout
    assert "warning: max_gpu_hours (5.0 device-hours) is less than the first bracket's" in (
        checked.stderr
    )
    priced = kubohb("estimate", str(path), "--json")
    assert priced.returncode == 0, priced.stderr
    doc = yaml.safe_load(priced.stdout)  # JSON is YAML
    assert doc["trials"] == trials and doc["simulated"]["stop_reason"] == "max_gpu_hours"
    bad = kubohb("estimate", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2
