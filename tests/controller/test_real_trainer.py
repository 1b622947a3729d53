"""One sweep with the real torch trainer (`python -m trainer`) on tiny budgets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.sweep.spec import parse_sweep
from tests.sweeps import read_state, run_json, synthetic_sweep, write_sweep

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None, reason="torch is not installed (extra: trainer)"
    ),
]
TINY = [  # a small Zela et al. network: one block per stage, few filters
    {"name": "nr_residual_blocks_1", "type": "categorical", "choices": [1]},
    {"name": "nr_residual_blocks_2", "type": "categorical", "choices": [1]},
    {"name": "nr_residual_blocks_3", "type": "categorical", "choices": [1]},
    {"name": "initial_filters", "type": "int", "low": 4, "high": 8},
    {"name": "res_branches_1", "type": "categorical", "choices": [1]},
    {"name": "res_branches_2", "type": "categorical", "choices": [1]},
    {"name": "res_branches_3", "type": "categorical", "choices": [1]},
    {"name": "learning_rate", "type": "float", "low": 0.01, "high": 0.1, "log": True},
    {"name": "batch_size", "type": "categorical", "choices": [50]},
]


def spec_reserve_from_scratch(spec: dict[str, Any]) -> float:
    return parse_sweep(yaml.safe_dump(spec)).reserve_s(spec["budget"]["max"])


def test_real_trainer_sweep(tmp_path: Path) -> None:
    spec = synthetic_sweep(
        tmp_path,
        name="torch",
        space={"parameters": TINY},
        budget={"unit": "epochs", "min": 1, "max": 1},
        stop={"max_iterations": 2},  # one budget: one trial per bracket
        poll_interval_s=0.5,
        trainer={
            "command": ["python", "-m", "trainer"],
            "dataset": "synthetic",  # the trainer's own learnable CIFAR-shaped set (no download)
            "data": {"subset": 200, "val_size": 100},
            "device": "cpu",
            "num_workers": 0,
            "env": {"OMP_NUM_THREADS": "1"},
        },
        trials={"timeout_s": 400},
    )
    code, summary = run_json(write_sweep(tmp_path, spec))
    assert code == 0, summary
    state = read_state(tmp_path / "store", "torch")
    assert len(state["trials"]) == 2
    for trial_id, t in state["trials"].items():
        assert t["state"] == "SUCCEEDED", t["error"]
        assert 0.0 <= t["loss"] <= 1.0
        assert "info" not in t  # the state never embeds a result's info: result.json has it
        folder = tmp_path / "store" / "torch" / "trials" / trial_id
        info = json.loads((folder / "result.json").read_text())["info"]
        assert info["device"] == "cpu" and info["params"] > 0
        assert (folder / "checkpoint.pt").stat().st_size > 0
        assert (folder / "metrics.jsonl").read_text().strip()
        assert '"event": "result"' in (folder / "trainer.log").read_text()
    assert summary["incumbent"]["loss"] == min(t["loss"] for t in state["trials"].values())


@pytest.mark.parametrize("promotion", ["sync", "async"])
def test_promotions_continue_from_the_lower_rungs_checkpoint(
    tmp_path: Path, promotion: str
) -> None:
    spec = synthetic_sweep(
        tmp_path,
        name="cont",
        space={"parameters": TINY},
        budget={"unit": "epochs", "min": 1, "max": 3, "eta": 3},
        bohb={"seed": 7, "promotion_resume": True, "promotion": promotion},
        stop={"max_iterations": 1},  # one bracket: 3 configs at 1 epoch, the best at 3
        poll_interval_s=0.5,
        parallelism=3,
        trainer={
            "command": ["python", "-m", "trainer"],
            "dataset": "synthetic",
            "data": {"subset": 200, "val_size": 100},
            "device": "cpu",
            "num_workers": 0,
            "env": {"OMP_NUM_THREADS": "1"},
        },
        trials={"timeout_s": 400, "keep_checkpoints": 1, "seconds_per_epoch": 10},
    )
    code, summary = run_json(write_sweep(tmp_path, spec))
    assert code == 0, summary
    state = read_state(tmp_path / "store", "cont")
    trials = state["trials"]
    [top] = [tid for tid, t in trials.items() if t["rung"] == 1]
    lower = trials[top]["continues"]
    assert lower == top.replace("-r1", "-r0") and trials[lower]["state"] == "SUCCEEDED"
    folder = tmp_path / "store" / "cont" / "trials"

    def info(tid: str) -> dict[str, Any]:
        return dict(json.loads((folder / tid / "result.json").read_text())["info"])

    steps_per_epoch = 200 // 50  # the subset of training images, batch 50
    lower_info, top_info = info(lower), info(top)
    assert lower_info["steps"] == steps_per_epoch
    # the promoted trial's first step is the lower rung's last + 1, and it trains the rest only
    assert top_info["continued_from"] == lower and top_info["start_step"] == steps_per_epoch
    assert top_info["steps"] == 3 * steps_per_epoch
    log = [json.loads(line) for line in (folder / top / "trainer.log").read_text().splitlines()]
    [started] = [e for e in log if e["event"] == "training_started"]
    assert started["step"] == steps_per_epoch
    first_line = json.loads((folder / top / "metrics.jsonl").read_text().splitlines()[0])
    assert first_line["step"] == 2 * steps_per_epoch
    # charged: what ran; reserved: the increment (2 epochs), not the 3 of a fresh run
    assert trials[top]["reserve_s"] == spec_reserve_from_scratch(spec) - 10
    # every lower checkpoint the promotion no longer needs is gone; the incumbent's stays
    kept = {p.parent.name for p in folder.glob("*/checkpoint.pt")}
    assert top in kept and kept <= {top, *(t for t in trials if t.endswith("-r0"))}
    assert len(kept) <= 2  # keep_checkpoints 1 per budget
