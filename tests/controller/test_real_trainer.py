"""One sweep with the real torch trainer (`python -m trainer`) on tiny budgets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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
