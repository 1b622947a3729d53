"""The sweep's journal (controller/sweep/journal.py): bytes per change that do not grow with the
sweep, compaction, one writer, a gap refused, and views that read past the snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.simulated import SimulatedBackend, SyntheticObjective
from controller.cli import main
from controller.report.load import load_sweep
from controller.sweep import journal as journal_module
from controller.sweep.journal import (
    ConcurrentWriterError,
    Journal,
    entry_key,
    journal_prefix,
    load,
    load_state,
)
from controller.sweep.runner import load_or_create, run_sweep
from controller.sweep.spec import parse_sweep
from tests.controller.test_cluster_time import sim_spec
from tests.sweeps import synthetic_sweep
from trainer.store import FileStore, StoreError
from trainer.store.counting import CountingStore
from trainer.store.memory import MemoryStore


class PutSizes(CountingStore):
    """Counts bytes put per key."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.sizes: list[tuple[str, int]] = []

    def _after_put(self, op: str, key: str, size: int) -> None:
        self.sizes.append((key, size))


def _simulated(spec: dict[str, Any], store: Any) -> Any:
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    backend = SimulatedBackend(
        parsed.name, store, parsed.backend.simulated, objective=SyntheticObjective(10800)
    )
    return run_sweep(parsed, text, store=store, backend=backend)


def test_bytes_per_entry_do_not_grow_with_the_sweep() -> None:
    """A sweep of ~1,000 trials: the entries of its last tenth are no bigger than those of its
    first tenth, and all it writes for its state averages a few KB per trial."""
    store = PutSizes(MemoryStore())
    spec = sim_spec(
        bohb={"seed": 3, "promotion": "async"},
        stop={"max_iterations": None, "max_trials": 1000},
        parallelism=64,
        backend={"type": "simulated", "simulated": {"gpus": 64, "seed": 1}},
    )
    outcome = _simulated(spec, store)
    assert len(outcome.state.trials) == 1000
    entries = [n for k, n in store.sizes if k.startswith(journal_prefix("sim") + "/")]
    tenth = len(entries) // 10
    first, last = entries[:tenth], entries[-tenth:]
    assert sum(last) / len(last) <= 1.3 * sum(first) / len(first)
    state_bytes = sum(n for k, n in store.sizes if k.startswith("sim/") and "/trials/" not in k)
    assert state_bytes / 1000 < 10_000, state_bytes / 1000  # bytes per trial, snapshots included
    snapshots = [n for k, n in store.sizes if k == "sim/state.json"]
    assert len(snapshots) >= 3  # compacted as it grew, and once when it stopped
    # the final snapshot holds everything: a reader finds no entry after it
    loaded = load(store, "sim")
    assert loaded is not None and loaded.ops == [] and loaded.tail_bytes == 0
    assert len(loaded.state.trials) == 1000


def test_a_restart_reads_the_snapshot_and_the_tail_and_continues_exactly() -> None:
    """Stopped mid-sweep (max_trials), the state rolled forward from snapshot + entries is the
    one the controller had, and resuming it hands out the same trials an uninterrupted sweep
    does."""
    spec = sim_spec(stop={"max_iterations": 2}, parallelism=1)
    reference = _simulated(spec, MemoryStore())
    store = MemoryStore()
    first = _simulated(sim_spec(stop={"max_iterations": 2, "max_trials": 9}, parallelism=1), store)
    assert first.reason == "max_trials"
    loaded = load(store, "sim")
    assert loaded is not None
    assert (
        json.loads(loaded.state.model_dump_json())["trials"]
        == json.loads(first.state.model_dump_json())["trials"]
    )
    second = _simulated(spec, store)
    assert second.reason == "max_iterations"

    def seq(state: Any) -> list[tuple[str, str, float | None]]:
        return [(k, json.dumps(t.config, sort_keys=True), t.loss) for k, t in state.trials.items()]

    assert seq(second.state) == seq(reference.state)


def test_a_second_controller_on_the_same_sweep_loses_before_it_launches(tmp_path: Path) -> None:
    text = yaml.safe_dump(synthetic_sweep(tmp_path))
    spec = parse_sweep(text)
    store = FileStore(tmp_path / "store")
    state_a, _, journal_a = load_or_create(spec, text, store)
    state_b, _, journal_b = load_or_create(spec, text, store)  # a second `kubohb run`
    journal_a.append(state_a, [], [])
    with pytest.raises(ConcurrentWriterError, match="another controller wrote this entry"):
        journal_b.append(state_b, [], [])
    # two controllers starting a new sweep at once: one creates it, the other is refused
    other = parse_sweep(yaml.safe_dump(synthetic_sweep(tmp_path, name="other")))
    state_c, _, _ = load_or_create(other, text, store)
    with pytest.raises(ConcurrentWriterError, match="started sweep 'other' at the same time"):
        Journal.start(store, state_c)


def test_a_journal_with_a_gap_is_refused_naming_the_entry() -> None:
    store = MemoryStore()
    _simulated(sim_spec(stop={"max_trials": 6}, parallelism=2), store)
    loaded = load(store, "sim")
    assert loaded is not None
    # undo the final compaction, then lose an entry in the middle
    snapshot = json.loads(store.get("sim/state.json"))
    snapshot["seq"] = 1
    store.put("sim/state.json", json.dumps(snapshot).encode())
    store.delete(entry_key("sim", 3))
    with pytest.raises(StoreError, match=r"journal entry 4 where 3 was expected"):
        load(store, "sim")


def _uncompacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, FileStore]:
    """A simulated sweep stopped mid-way with compaction held off: state.json is still its first
    snapshot (no trial), every trial and all spend are in the journal only."""
    monkeypatch.setattr(journal_module, "MIN_COMPACT_BYTES", 10**12)
    store_dir = tmp_path / "store"
    spec = sim_spec(stop={"max_trials": 6}, parallelism=2, store={"url": str(store_dir)})
    store = FileStore(store_dir)
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    backend = SimulatedBackend(
        "sim", store, parsed.backend.simulated, objective=SyntheticObjective(10800)
    )
    state, bohb, journal = load_or_create(parsed, text, store, backend.clock().now())
    from controller.sweep.scheduler import Scheduler

    scheduler = Scheduler(parsed, store, backend, bohb, state, journal=journal)
    for _ in range(50):  # until results have come in (each sleep jumps to the next event)
        scheduler.tick()
        if scheduler.state.gpu_seconds > 0:
            break
        backend.clock().sleep(30)
    assert scheduler.state.status == "running" and scheduler.state.gpu_seconds > 0
    assert json.loads((store_dir / "sim" / "state.json").read_text())["trials"] == {}
    return store_dir, store


def test_status_reads_past_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubohb status` shows every trial, from the journal."""
    store_dir, store = _uncompacted(tmp_path, monkeypatch)
    assert main(["status", str(store_dir / "sim"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    current = load_state(store, "sim")
    assert current is not None and sum(shown["trials"].values()) == len(current.trials) > 0


def test_the_report_reads_past_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's GPU-hours and per-trial GPU-seconds are the journal's, not the stale
    snapshot's (which has none); an unreadable entry stops the roll forward with a note."""
    store_dir, store = _uncompacted(tmp_path, monkeypatch)
    current = load_state(store, "sim")
    assert current is not None
    data = load_sweep(FileStore(store_dir / "sim"), (store_dir / "sim").as_uri())
    assert data.state is not None
    assert data.state.gpu_hours == pytest.approx(current.gpu_seconds / 3600)
    assert data.state.status == "running"
    spent = {t.trial_id: t.gpu_seconds for t in current.trials.values()}
    assert data.state.gpu_seconds_by_trial == spent and sum(spent.values()) > 0

    last = store.list(journal_prefix("sim"))[-1]
    (store_dir / last).write_text("{not json")
    data = load_sweep(FileStore(store_dir / "sim"), (store_dir / "sim").as_uri())
    assert data.state is not None and any(last.rpartition("/")[2] in n for n in data.notes)
