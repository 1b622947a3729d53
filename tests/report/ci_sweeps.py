"""Small hand-made sweeps with known losses, for the gates, the markdown summary and JUnit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trainer.contract import TrialInfo, TrialResult, TrialSpec
from trainer.store import FileStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Outcome = float | str  # a loss, "failed" or "running"


def write_trial(
    root: FileStore,
    sweep: str,
    trial_id: str,
    budget: float,
    outcome: Outcome,
    *,
    unit: str = "epochs",
    config: dict[str, Any] | None = None,
    start_s: float = 0.0,
) -> None:
    spec = TrialSpec.model_validate(
        {
            "sweep": sweep,
            "trial_id": trial_id,
            "config": config if config is not None else {"lr": 0.01},
            "budget": budget,
            "budget_unit": unit,
            "store_root": root.root,
        }
    )
    prefix = f"{sweep}/trials/{trial_id}"
    root.put_json(f"{prefix}/trial.json", spec.model_dump(mode="json"))
    if outcome == "running":
        return
    failed = outcome == "failed"
    result = TrialResult(
        trial_id=trial_id,
        status="failed" if failed else "ok",
        loss=None if failed else float(outcome),
        error="diverged" if failed else None,
        info=TrialInfo(train_seconds=10.0, wall_seconds=12.0),
        started_at=T0 + timedelta(seconds=start_s),
        finished_at=T0 + timedelta(seconds=start_s + 12.0),
    )
    root.put(f"{prefix}/result.json", result.model_dump_json().encode())


def write_sweep(
    store_dir: Path, sweep: str, trials: dict[str, tuple[float, Outcome]], unit: str = "epochs"
) -> str:
    """trial id → (budget, outcome); returns the sweep's URL."""
    root = FileStore(store_dir)
    for i, (trial_id, (budget, outcome)) in enumerate(sorted(trials.items())):
        write_trial(root, sweep, trial_id, budget, outcome, unit=unit, start_s=10.0 * i)
    return root.url(sweep)


def raw_best(sweep_dir: Path) -> dict[float, float]:
    """Budget → best loss, straight from the files (independent of controller.report)."""
    import json

    best: dict[float, float] = {}
    for trial_dir in sorted((sweep_dir / "trials").iterdir()):
        result_file = trial_dir / "result.json"
        if not result_file.exists():
            continue
        result = json.loads(result_file.read_text())
        if result["status"] == "ok":
            budget = float(json.loads((trial_dir / "trial.json").read_text())["budget"])
            best[budget] = min(result["loss"], best.get(budget, 1.0))
    return best
