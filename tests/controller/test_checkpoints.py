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


def test_with_promotion_resume_a_checkpoint_stays_until_no_promotion_can_continue_it(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "store")
    backend = Scripted(store)
    s = _scheduler(
        tmp_path, backend, parallelism=9, trials={"keep_checkpoints": 1},
        stop={"max_iterations": 1}, bohb={"seed": 7, "promotion_resume": True},
    )  # fmt: skip
    s.tick()
    first = sorted(backend.running)
    assert len(first) == 9
    for tid in first:
        store.put(f"syn/trials/{tid}/{FILE_CHECKPOINT}", b"weights")
    for i, tid in enumerate(first):
        backend.finish(tid, (i + 1) / 20)  # first[0] is the best, first[:3] are promoted
        if i < 8:  # BOHB cannot decide a promotion before the stage's last result
            s.tick()
            assert _checkpoints(store) == set(first), "a candidate for promotion lost its own"
    s.tick()
    promoted = sorted(backend.running)
    assert promoted == [tid.replace("-r0", "-r1") for tid in first[:3]]
    # the 6 not promoted are gone; the 3 promoted stay while their promotions run
    assert _checkpoints(store) == set(first[:3])
    for tid, lower in zip(promoted, first[:3], strict=True):
        t = s.state.trials[tid]
        assert t.continues == lower
        # the increment (budget 3 above 1) plus the startup allowance; the deadline stays the
        # whole budget's (a trainer without the checkpoint trains from scratch)
        assert t.reserve_s == 3 - 1 + 30 and t.deadline_s == s.spec.deadline_s(3)
        spec = json.loads(store.get(f"syn/trials/{tid}/trial.json"))
        assert spec["continue_from"] == {"trial_id": lower, "budget": s.state.trials[lower].budget}
    # a promotion that finished frees its lower checkpoint (but the best of the budget stays)
    store.put(f"syn/trials/{promoted[1]}/{FILE_CHECKPOINT}", b"weights")
    backend.finish(promoted[1], 0.2)
    s.tick()
    assert _checkpoints(store) == {*first[:3], promoted[1]} - {first[1]}
    # a restart remembers which deletes wait on a promotion
    again = _scheduler(
        tmp_path, Scripted(store), parallelism=9, trials={"keep_checkpoints": 1},
        stop={"max_iterations": 1}, bohb={"seed": 7, "promotion_resume": True},
    )  # fmt: skip
    assert again.checkpoints.waiting == {first[2]}
