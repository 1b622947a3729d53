"""Checkpoint lifecycle: finished trials keep their checkpoint only while among the best of their
budget; failed trials' go at once; the store holds at most keep x budgets of them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.controller.test_scheduler import Scripted, _scheduler
from tests.sweeps import kubohb
from trainer.contract import FILE_CHECKPOINT
from trainer.store import FileStore


def _checkpoints(store: FileStore) -> set[str]:
    return {k.split("/")[2] for k in store.list("syn/trials") if k.endswith(FILE_CHECKPOINT)}


def test_only_the_best_checkpoints_of_each_budget_are_kept(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    backend = Scripted(store)
    s = _scheduler(
        tmp_path, backend, parallelism=9, trials={"keep_checkpoints": 2},
        stop={"max_iterations": 1},
    )  # fmt: skip
    s.tick()
    first = sorted(backend.running)
    assert len(first) == 9  # the bracket's first stage: 9 configs at budget 1
    losses = {tid: (i + 1) / 20 for i, tid in enumerate(first)}  # the first trial is the best
    for tid in first:
        store.put(f"syn/trials/{tid}/{FILE_CHECKPOINT}", b"weights")
    for tid in first[:4]:
        backend.finish(tid, losses[tid])
    s.tick()
    assert _checkpoints(store) == set(first[:2]) | set(first[4:])  # 2 best finished + running
    for tid in first[4:]:
        backend.finish(tid, losses[tid])
    s.tick()
    assert _checkpoints(store) == set(first[:2])
    assert s.checkpoints.deleted == 7
    # a better one later pushes the worst of the two out; the incumbent's stays
    promoted = sorted(backend.running)
    assert promoted and all(t.endswith("-r1") for t in promoted)
    for tid in promoted:
        store.put(f"syn/trials/{tid}/{FILE_CHECKPOINT}", b"weights")
        backend.finish(tid, 0.01)
    s.tick()
    kept = _checkpoints(store)
    assert set(first[:2]) <= kept and s.state.incumbent is not None
    assert s.state.incumbent["trial_id"] in kept
    shown = kubohb("status", str(tmp_path / "store" / "syn"), "--store-bytes", "--json")
    assert shown.returncode == 0, shown.stderr
    by_kind = json.loads(shown.stdout)["store_bytes"]
    assert by_kind["checkpoint.pt"] == len(b"weights") * len(kept)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "store" / "syn").rglob("*") if p.is_file())
    assert by_kind["total"] == on_disk


def test_a_failed_trials_checkpoint_goes_at_once_and_none_is_kept_without_a_limit(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "store")
    backend = Scripted(store)
    s = _scheduler(tmp_path, backend, parallelism=2, stop={"max_iterations": 1})
    s.tick()
    failing, ok = sorted(backend.running)
    for tid in (failing, ok):
        store.put(f"syn/trials/{tid}/{FILE_CHECKPOINT}", b"weights")
    store.put(f"syn/trials/{failing}/result.json", b'{"no": "result"}')  # invalid: FAILED
    backend.running.discard(failing)
    backend.finish(ok, 0.3)
    s.tick()
    assert s.state.trials[failing].state == "FAILED"
    assert _checkpoints(store) == {ok}

    keep_all = tmp_path / "all"
    keep_all.mkdir()
    store2 = FileStore(keep_all / "store")
    b2 = Scripted(store2)
    s2 = _scheduler(keep_all, b2, parallelism=2, trials={"keep_checkpoints": None})
    s2.tick()
    tids = sorted(b2.running)
    for tid in tids:
        store2.put(f"syn/trials/{tid}/{FILE_CHECKPOINT}", b"weights")
        b2.finish(tid, 0.5)
    s2.tick()
    assert _checkpoints(store2) == set(tids) and s2.checkpoints.deleted == 0
    # resumed with finished trials in the table: still nothing deleted
    again = _scheduler(keep_all, Scripted(store2), parallelism=2, trials={"keep_checkpoints": None})
    again.tick()
    assert _checkpoints(store2) >= set(tids) and again.checkpoints.deleted == 0
