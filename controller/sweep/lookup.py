"""What ``kubohb status`` reads beside the state: the sweep's spec.yaml (for its caps and ETA) and
the latest metrics.jsonl line of each launched trial (its epoch, step, validation error,
images/s). Best effort: an unreadable file leaves that part out, never fails the status."""

from __future__ import annotations

import json
from typing import Any

from controller.sweep.spec import SpecError, SweepSpec, parse_sweep
from controller.sweep.state import FILE_SPEC, SweepState
from trainer.contract import FILE_METRICS, trial_prefix
from trainer.store import Store, StoreError

# At most this many metrics files per status (one GET each): the table shows 20 trials.
MAX_PROGRESS = 100


def read_spec(store: Store, sweep: str) -> SweepSpec | None:
    try:
        text = store.get(f"{sweep}/{FILE_SPEC}").decode()
        return parse_sweep(text, store.url(f"{sweep}/{FILE_SPEC}"))
    except (StoreError, SpecError, UnicodeDecodeError):
        return None


def read_progress(store: Store, state: SweepState) -> dict[str, dict[str, Any]]:
    """trial id -> the last complete line of its metrics.jsonl, for the launched trials."""
    out: dict[str, dict[str, Any]] = {}
    for t in state.in_phase("LAUNCHED", "RUNNING")[:MAX_PROGRESS]:
        try:
            raw = store.get(f"{trial_prefix(state.sweep, t.trial_id)}/{FILE_METRICS}")
        except StoreError:  # not written yet (NotFound), or the store failing: no progress
            continue
        line = last_line(raw)
        if line is not None:
            out[t.trial_id] = line
    return out


def last_line(raw: bytes) -> dict[str, Any] | None:
    """The last line that parses as a JSON object (a line being written may be cut short)."""
    for text in reversed(raw.decode(errors="replace").splitlines()):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
