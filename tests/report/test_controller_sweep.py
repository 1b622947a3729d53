"""`kubohb run` (the real controller, BOHB, local backend, synthetic trainer) then `kubohb report`.

Proves the report reads what the controller really writes (trial ids, state.json) and that the
``report`` subcommand is wired into the ``kubohb`` CLI; both run in fresh processes like a user's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.report.correlation import NOT_ENOUGH
from tests.sweeps import REPO, kubohb, read_state, synthetic_sweep, write_sweep


def _sweep(tmp: Path) -> dict[str, Any]:
    """Budgets 1, 3, 9 (seconds of the synthetic objective); one bracket of 9 + 3 + 1 trials."""
    return synthetic_sweep(
        tmp,
        "rep",
        bohb={"seed": 3},
        stop={"max_iterations": 1},
        backend={"local": {"run_dir": str(tmp / "local")}},  # the default cancel grace
    )


def test_report_of_a_real_controller_sweep(tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, _sweep(tmp_path))
    run = kubohb("run", str(spec), "--json", "--no-progress")
    if run.returncode == 2 and "unrecognized arguments" in run.stderr:
        pytest.skip(f"this kubohb run takes other flags: {run.stderr[-300:]}")
    assert run.returncode == 0, run.stderr[-3000:]
    state = read_state(tmp_path / "store", "rep")

    out = tmp_path / "report"
    rep = kubohb("report", (tmp_path / "store" / "rep").as_uri(), "--json", "--out", str(out))
    assert rep.returncode == 0, rep.stderr[-3000:]
    s = json.loads(rep.stdout)
    assert s["trials"]["total"] == len(state["trials"]) == 13
    assert s["trials"]["ok"] == sum(t["state"] == "SUCCEEDED" for t in state["trials"].values())
    assert s["budgets"] == [1.0, 3.0, 9.0]
    # the controller's incumbent (largest budget, then lowest loss) is the report's
    assert s["incumbent"]["budget"] == state["incumbent"]["budget"]
    assert s["incumbent"]["loss"] == state["incumbent"]["loss"]
    assert s["gpu_hours"] == pytest.approx(state["gpu_seconds"] / 3600)
    assert s["stop_reason"] == state["stop_reason"]
    # per bracket, the configs and how many the model proposed, as the controller recorded them
    configs = {tid.rsplit("-r", 1)[0]: t["model_based"] for tid, t in state["trials"].items()}
    assert s["proposals"] == [
        {
            "iteration": 0,
            "configs": len(configs) == 9 and 9,
            "model_based": sum(configs.values()),
            "random": 9 - sum(configs.values()),
            "unknown": 0,
        }
    ]
    # each top config marked as the controller's records say BOHB proposed it
    for c in s["top"]:
        trial = state["trials"][c["trial_id"]]
        assert c["model_based"] is trial["model_based"] and c["preemptions"] == 0
        assert c["queued_s"] is not None and c["queued_s"] >= 0
    # budgets 1 and 3 share the 3 promoted configs (a number, or "undefined" when the synthetic
    # losses tie); 1 and 9 share one config: "not enough data", never a number
    pairs = {(p["budget_a"], p["budget_b"]): p for p in s["correlations"]}
    assert pairs[(1.0, 3.0)]["n"] == 3 and pairs[(1.0, 3.0)]["note"] != NOT_ENOUGH
    assert pairs[(1.0, 9.0)]["n"] == 1 and pairs[(1.0, 9.0)]["rho"] is None
    assert pairs[(1.0, 9.0)]["note"] == NOT_ENOUGH
    assert (out / "index.html").is_file() and (out / "figure1_loss_over_time.png").is_file()

    # the page's rerun command, run from the report folder, trains the best config on budget 9
    best = s["top"][0]["config_id"]
    page = (out / "index.html").read_text()
    command = f"KUBOHB_MAX_BUDGET=9 python -m trainer.synthetic --trial rerun/{best}.json"
    assert command in page
    env = {**os.environ, "KUBOHB_MAX_BUDGET": "9", "PYTHONPATH": str(REPO)}
    rerun = subprocess.run(
        [sys.executable, "-m", "trainer.synthetic", "--trial", f"rerun/{best}.json"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    result = json.loads(
        (tmp_path / "store" / "rep-rerun" / "trials" / best / "result.json").read_text()
    )
    assert result["status"] == "ok"
    assert json.loads((out / "rerun" / f"{best}.json").read_text())["budget"] == 9.0
