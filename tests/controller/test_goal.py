"""`stop.goal`: a sweep stops once a trial on the largest budget beats the goal (exit 0), and a
sweep that ends without meeting it exits 4, so a CI pipeline can gate on it."""

from __future__ import annotations

import json
from pathlib import Path

from controller.sweep.state import EXIT_GOAL_NOT_MET
from tests.controller.test_cluster_time import run, sim_spec
from tests.sweeps import kubohb, synthetic_sweep, write_sweep
from trainer.store.memory import MemoryStore


def test_a_met_goal_stops_the_sweep_early_with_exit_0() -> None:
    full = run(sim_spec(stop={"max_iterations": 4}), MemoryStore("full"))
    tops = [t for t in full.state.trials.values() if t.budget == 10800 and t.loss is not None]
    first_top = min(tops, key=lambda t: t.ended_at or t.created_at)
    assert first_top.loss is not None
    goal = {"loss_below": min(1.0, first_top.loss + 1e-9)}  # met by the first max-budget result
    early = run(sim_spec(stop={"max_iterations": 4, "goal": goal}), MemoryStore("early"))
    assert early.reason == "goal" and early.exit_code == 0
    assert early.state.status == "finished"
    assert len(early.state.trials) < len(full.state.trials)
    best = early.state.incumbent
    assert best is not None and best["budget"] == 10800 and best["loss"] < goal["loss_below"]


def test_a_goal_not_met_exits_4_saying_so(tmp_path: Path) -> None:
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 1, "goal": {"loss_below": 1e-9}})
    proc = kubohb("run", str(write_sweep(tmp_path, spec)), "--json")
    assert proc.returncode == EXIT_GOAL_NOT_MET == 4, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["goal"] == {"loss_below": 1e-9, "met": False}
    assert summary["stop_reason"] == "max_iterations" and summary["exit_code"] == 4
    plain = kubohb("run", str(write_sweep(tmp_path, spec)))  # finished: only reports it
    assert plain.returncode == 4
    assert "goal not met: no loss below 1e-09 on the largest budget (9 seconds)" in plain.stdout


def test_a_capped_sweep_can_end_as_a_success_saying_why(tmp_path: Path) -> None:
    """What the chart's controller Job runs: a cap that stops the sweep exits 0 (the Job ends
    Complete for `kubectl wait`), and the termination log says what happened."""
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 2, "max_trials": 4})
    log = tmp_path / "termination-log"
    proc = kubohb(
        "run", str(write_sweep(tmp_path, spec)), "--stopped-is-success",
        "--termination-log", str(log),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = json.loads(log.read_text())
    assert said["stop_reason"] == "max_trials" and said["exit_code"] == 3
    assert said["incumbent_loss"] is not None and said["goal_met"] is None
    plain = kubohb("run", str(write_sweep(tmp_path, spec)))  # without the flag: the cap's 3
    assert plain.returncode == 3


def test_a_smoke_run_is_two_tiny_trials_beside_the_sweep(tmp_path: Path) -> None:
    spec = synthetic_sweep(tmp_path, stop={"max_gpu_hours": 5, "max_iterations": 4})
    proc = kubohb("run", str(write_sweep(tmp_path, spec)), "--smoke", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["sweep"] == "syn-smoke" and summary["trials"] == {"SUCCEEDED": 2}
    assert summary["stop_reason"] == "max_iterations"
    assert not (tmp_path / "store" / "syn").exists()  # the real sweep is untouched
    stored = (tmp_path / "store" / "syn-smoke" / "spec.yaml").read_text()
    assert stored.startswith("# kubohb run --smoke of the sweep syn")
    trial = json.loads(
        next((tmp_path / "store" / "syn-smoke" / "trials").glob("*/trial.json")).read_text()
    )
    assert trial["budget"] == 20 and trial["data"]["subset"] == 256  # the sweep's seconds unit
