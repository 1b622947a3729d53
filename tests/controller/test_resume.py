"""SIGKILL the controller at >= 20 points of its write protocol, restart it each time, and get
the same sweep as an uninterrupted run: no result lost, no trial run twice unless it was LOST."""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.sweeps import (
    invocations,
    kill_run,
    read_state,
    run_json,
    synthetic_sweep,
    write_sweep,
)
from trainer.store import FileStore

pytestmark = pytest.mark.slow
# Writes after which a controller dies, cycled: the first few writes of a restart hit every step
# of the protocol (pre-launch snapshot, trial.json, post-launch snapshot, result snapshot).
KILL_CYCLE = [1, 2, 3, 1, 2, 4, 1, 3, 2, 5]
MIN_KILLS = 20


def _trial_set(state: dict) -> dict[str, tuple[str, float, float | None]]:
    return {
        trial_id: (json.dumps(t["config"], sort_keys=True), t["budget"], t["loss"])
        for trial_id, t in state["trials"].items()
    }


def _kind(op: str, key: str) -> str:
    """Which write of the protocol a (operation, key) is."""
    if "/journal/" in key:
        return "entry"
    if key.endswith("/state.json"):
        return "start" if op == "put_new" else "compaction"  # compaction: put_file
    return "trial.json" if key.endswith("/trial.json") else key


def test_kill_and_resume_at_many_points(tmp_path: Path) -> None:
    # Parallelism 1 fixes the order of results, so the sweep is fully determined by its seed.
    over: dict[str, Any] = {"parallelism": 1, "poll_interval_s": 0.05}

    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    code, _ = run_json(write_sweep(ref_dir, synthetic_sweep(ref_dir, **over)))
    assert code == 0
    reference = read_state(ref_dir / "store", "syn")

    dut = tmp_path / "dut"
    dut.mkdir()
    sweep = write_sweep(dut, synthetic_sweep(dut, **over))
    inv = dut / "invocations.txt"
    # Trials last about as long as a controller start, so restarts both adopt running trials
    # and find results that arrived while no controller ran.
    env = {"KUBOHB_SYNTHETIC_SLEEP": "1.5", "KUBOHB_SYNTHETIC_INVOCATIONS": str(inv)}
    kills, points, adopted = 0, set(), 0
    killed_after: list[tuple[str, str]] = []  # (operation, key) of the last write of each kill
    for k in itertools.cycle(KILL_CYCLE):
        # a journal that compacts whenever its entries pass 4 KB: kills land in compactions too
        proc = kill_run(sweep, k, env=env, compact_bytes=4096)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, proc.stderr[-3000:]
            break
        kills += 1
        for line in proc.stderr.splitlines():
            event = json.loads(line)
            if event["event"] == "test.killed_after":
                killed_after.append((event["op"], event["key"]))
        state_file = dut / "store" / "syn" / "state.json"
        done = (
            sum(
                t["state"] in ("SUCCEEDED", "FAILED")
                for t in read_state(dut / "store", "syn")["trials"].values()
            )
            if state_file.exists()
            else 0
        )
        points.add((k, done))
        adopted += '"event": "sweep.adopted", "running": 1,' in proc.stderr
        assert kills < 200, "the sweep makes no progress across restarts"
    assert kills >= MIN_KILLS, f"only {kills} kills happened"
    assert len(points) >= MIN_KILLS  # distinct (kill point, progress) pairs
    # the kills hit every kind of write: journal entries, compactions, trial.json files
    assert len(killed_after) == kills
    kinds = [_kind(op, key) for op, key in killed_after]
    assert kinds.count("entry") >= 5 and kinds.count("compaction") >= 2, kinds
    assert "trial.json" in kinds
    final = read_state(dut / "store", "syn")
    assert final["status"] == "finished" and final["stop_reason"] == "max_iterations"

    # Same trials (ids, configs, budgets) and losses as the uninterrupted run.
    assert _trial_set(final) == _trial_set(reference)
    assert final["incumbent"] == reference["incumbent"]
    # No finished result lost: every result.json in the store is in the table, as finished.
    store = FileStore(dut / "store")
    results = [k for k in store.list("syn/trials") if k.endswith("/result.json")]
    assert len(results) == len(final["trials"]) == 17
    for key in results:
        trial_id = key.split("/")[2]
        assert final["trials"][trial_id]["loss"] == store.get_json(key)["loss"]
    # No trial ran twice unless the controller recorded it as relaunched (LOST).
    ran = invocations(inv)
    assert set(ran) == set(final["trials"])
    for trial_id, n in ran.items():
        assert n == 1 or final["trials"][trial_id]["attempts"] >= n, (trial_id, n)
    assert sum(ran.values()) == 17, ran  # in fact, with this protocol, none ran twice
    assert adopted >= 1, "no restart adopted a running trial: the test lost its coverage"
