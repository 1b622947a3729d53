"""``bohb.warm_start``: an earlier sweep's results seed a new sweep's models (on the simulator, the
real scheduler and BOHB, file stores the URLs point at)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.simulated import SimulatedBackend, SyntheticObjective
from controller.bohb import BOHB, SearchSpace
from controller.sweep.runner import load_or_create, run_sweep
from controller.sweep.spec import parse_sweep
from controller.sweep.state import SweepState
from controller.sweep.warmstart import WarmStartError, load_prior
from tests.controller.test_cluster_time import sim_spec
from tests.sweeps import SPACE, kubohb
from trainer.store import FileStore


def _spec(tmp: Path, name: str, seed: int, **bohb: Any) -> dict[str, Any]:
    spec = sim_spec(
        name=name,
        budget={"unit": "seconds", "min": 1, "max": 9, "eta": 3},
        bohb={"seed": seed, **bohb},
        stop={"max_iterations": 4},
        parallelism=4,
        store={"url": str(tmp / "store")},
    )
    spec["name"] = name
    return spec


def _run(tmp: Path, spec: dict[str, Any]) -> SweepState:
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    store = FileStore(tmp / "store")
    backend = SimulatedBackend(
        parsed.name, store, parsed.backend.simulated, objective=SyntheticObjective(9)
    )
    return run_sweep(parsed, text, store=store, backend=backend).state


def _first_model_based(state: SweepState) -> int:
    return next(i for i, t in enumerate(state.trials.values()) if t.model_based)


def test_a_warm_started_sweep_proposes_from_a_model_sooner(tmp_path: Path) -> None:
    earlier = _run(tmp_path, _spec(tmp_path, "earlier", 1))
    assert sum(t.state == "SUCCEEDED" for t in earlier.trials.values()) > 20
    cold = _run(tmp_path, _spec(tmp_path, "cold", 2))
    url = str(tmp_path / "store" / "earlier")
    warm = _run(tmp_path, _spec(tmp_path, "warm", 2, warm_start=[url]))
    assert _first_model_based(warm) < _first_model_based(cold)
    # the brackets and the incumbent are this sweep's own
    assert len(warm.trials) == len(cold.trials)
    assert warm.incumbent is not None and warm.incumbent["trial_id"] in warm.trials
    # a resume never reads the earlier sweep again: its results are in the first snapshot
    shutil.rmtree(tmp_path / "store" / "earlier")
    text = yaml.safe_dump(_spec(tmp_path, "warm", 2, warm_start=[url]), sort_keys=False)
    state, bohb, _ = load_or_create(parse_sweep(text), text, FileStore(tmp_path / "store"))
    assert len(state.trials) == len(warm.trials) and bohb.finished


def test_another_space_is_refused_with_the_parameters_that_differ(tmp_path: Path) -> None:
    _run(tmp_path, _spec(tmp_path, "earlier", 1))
    space = yaml.safe_load(yaml.safe_dump(SPACE))  # a copy to edit
    space[0] = {**space[0], "high": 99.0}
    other = _spec(tmp_path, "other", 2, warm_start=[str(tmp_path / "store" / "earlier")])
    other["space"] = {"parameters": [*space, {"name": "z", "type": "int", "low": 0, "high": 3}]}
    with pytest.raises(WarmStartError) as err:
        load_prior(parse_sweep(yaml.safe_dump(other)), other["bohb"]["warm_start"][0])
    text = str(err.value)
    assert f"~ {space[0]['name']}:" in text and "+ z:" in text and "search space differs" in text
    # through the command: exit 2, and nothing of the new sweep is written
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    run = kubohb("run", str(path), "--json")
    assert run.returncode == 2 and "bohb.warm_start" in run.stderr, run.stderr
    assert not (tmp_path / "store" / "other").exists()


def test_results_at_budgets_this_schedule_lacks_are_skipped(tmp_path: Path) -> None:
    earlier = _run(tmp_path, _spec(tmp_path, "earlier", 1))
    spec = _spec(tmp_path, "later", 2)
    spec["budget"] = {"unit": "seconds", "min": 3, "max": 27, "eta": 3}
    prior = load_prior(parse_sweep(yaml.safe_dump(spec)), str(tmp_path / "store" / "earlier"))
    at_1 = sum(t.state == "SUCCEEDED" and t.budget == 1 for t in earlier.trials.values())
    assert prior.skipped == at_1 > 0
    assert {b for _, b, _ in prior.results} == {3.0, 9.0}
    missing = _spec(tmp_path, "x", 2)
    with pytest.raises(WarmStartError, match=r"no spec\.yaml there"):
        load_prior(parse_sweep(yaml.safe_dump(missing)), str(tmp_path / "store" / "nothing"))


def test_the_optimiser_takes_warm_results_only_before_its_first_ask() -> None:
    space = SearchSpace.model_validate({"parameters": SPACE})
    bohb = BOHB(space, 1, 9, 3, seed=0)
    config = bohb.ask()
    assert config is not None
    with pytest.raises(RuntimeError, match="handed out trials already"):
        bohb.warm_start([(dict(config.config), 1.0, 0.5)])
    fresh = BOHB(space, 1, 9, 3, seed=0)
    with pytest.raises(ValueError, match="budget 2 is not one of"):
        fresh.warm_start([(dict(config.config), 2.0, 0.5)])
    with pytest.raises(ValueError, match="not in the search space"):
        fresh.warm_start([({**config.config, "nope": 1}, 1.0, 0.5)])
    assert fresh.warm_start([(dict(config.config), 1.0, 0.5)]) == 1
