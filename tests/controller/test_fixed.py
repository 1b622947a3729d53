"""``space.fixed``: values every trial gets but BOHB never searches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from controller.sweep.spec import SpecError, parse_sweep
from tests.controller.test_scheduler import _scheduler
from tests.sweeps import REPO, SPACE, synthetic_sweep


def test_fixed_values_reach_every_trial_but_not_the_model(tmp_path: Path) -> None:
    fixed = {"mode": "fast", "layers": 3, "dropout": 0.0, "flag": True}
    s = _scheduler(tmp_path, space={"parameters": SPACE, "fixed": fixed})
    s.tick()
    assert s.bohb.space.dim == len(SPACE)  # type: ignore[attr-defined]
    launched = [t for t in s.state.trials.values() if t.state == "RUNNING"]
    assert launched
    for t in launched:
        # the record holds what BOHB chose
        assert set(t.config) == set(s.spec.space.build().names) == {"x", "y", "act"}
        raw = s.store.get(f"syn/trials/{t.trial_id}/trial.json")
        assert json.loads(raw)["config"] == {**fixed, **t.config}


def test_a_fixed_name_that_is_also_searched_is_refused_naming_it(tmp_path: Path) -> None:
    spec = synthetic_sweep(tmp_path, space={"parameters": SPACE, "fixed": {"x": 1.0}})
    with pytest.raises(SpecError, match=r"space\.fixed\.x: also a searched parameter"):
        parse_sweep(yaml.safe_dump(spec))
    nested = synthetic_sweep(tmp_path, space={"parameters": SPACE, "fixed": {"y": [1, 2]}})
    with pytest.raises(SpecError, match=r"space\.fixed\.y"):
        parse_sweep(yaml.safe_dump(nested))


def test_the_demo_keeps_its_constants_out_of_the_model_and_gives_bohb_a_model() -> None:
    demo = parse_sweep((REPO / "docs" / "examples" / "demo.yaml").read_text())
    space = demo.space.build()
    assert not any(p.type == "categorical" and len(p.choices) == 1 for p in space.parameters)
    assert set(demo.space.fixed) & set(space.names) == set()
    assert {"batch_size", "alpha", "length", "momentum"} <= set(demo.space.fixed)
    # the first bracket's smallest-budget results (eta ** s_max of them) are enough for a model
    # (2 (d + 1), HpBandSter's rule), so the second bracket is proposed by it
    first_bracket = demo.budget.eta ** (len(demo.budgets()) - 1)
    assert first_bracket >= 2 * (space.dim + 1)
    assert demo.stop.max_iterations is not None and demo.stop.max_iterations >= 2
