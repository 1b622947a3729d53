"""The snapshot written in pieces reads back as the state it was written from."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path

from controller.sweep import snapshot
from controller.sweep.state import SweepState, TrialRecord
from trainer.store import FileStore


def _state(trials: int) -> SweepState:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    state = SweepState(sweep="s", seq=7, started_at=now, updated_at=now, bohb={})
    for i in range(trials):
        tid = f"it{i // 9}-c{i % 9}-r0"
        state.trials[tid] = TrialRecord(
            trial_id=tid, config_id=tid[:-3], config={"x": i / 7, "act": "relu"}, budget=1.0,
            rung=0, iteration=i // 9, state="SUCCEEDED", loss=i / 3, token=f"t{i}", deadline_s=9.0,
            created_at=now,
        )  # fmt: skip
    return state


OPTIMISER = {
    "version": 1,
    "iterations": [{"runs": [1, 2]}, {"runs": []}],
    "empty": [],
    "trials": {"a": [0, 1, 2]},
    "best": {"0": math.inf},  # a crashed budget's loss: null, as pydantic's own dump writes it
}


def test_pieces_read_back_as_the_state_with_the_optimiser_as_bohb() -> None:
    state = _state(2 * snapshot.CHUNK + 3)  # chunks: full, full, partial
    f = io.BytesIO()
    snapshot.write(f, state, OPTIMISER)
    back = SweepState.model_validate_json(f.getvalue())
    assert list(back.trials) == list(state.trials)  # BOHB's order of hand-out kept
    assert back.model_copy(update={"bohb": {}}) == state
    assert back.bohb == {**OPTIMISER, "best": {"0": None}}
    assert state.bohb == {}  # the state is not touched


def test_a_state_without_trials_and_the_store_copy(tmp_path: Path) -> None:
    state = _state(0)
    store = FileStore(tmp_path)
    size = snapshot.put(store, "s/state.json", state, {})
    raw = store.get("s/state.json")
    assert size == len(raw)
    assert SweepState.model_validate_json(raw) == state
    assert store.list("") == ["s/state.json"]  # no temporary file left beside it


def test_a_state_written_before_tokens_loads_without_its_infos() -> None:
    """Snapshots of 0.1 embedded each result's info in its trial record: they still load."""
    record = {
        "trial_id": "it0-c0-r0", "config": {"x": 1}, "budget": 1.0, "deadline_s": 9.0,
        "created_at": "2026-01-01T00:00:00Z", "state": "SUCCEEDED", "loss": 0.5,
        "info": {"device": "cpu", "params": 10},
    }  # fmt: skip
    raw = {"sweep": "syn", "started_at": record["created_at"], "updated_at": record["created_at"],
           "bohb": {}, "trials": {"it0-c0-r0": record}}  # fmt: skip
    state = SweepState.model_validate_json(json.dumps(raw))
    t = state.trials["it0-c0-r0"]
    assert t.loss == 0.5 and t.token is None
    assert "info" not in state.model_dump_json()
