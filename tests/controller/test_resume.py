"""SIGKILL the controller at >= 20 points of its write protocol, restart it each time, and get
the same sweep as an uninterrupted run: no result lost, no trial run twice unless it was LOST."""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.base import Backend, Launch, TrialState
from controller.sweep.runner import load_or_create
from controller.sweep.scheduler import DEADLINE_SLACK_S, Scheduler
from controller.sweep.spec import parse_sweep
from tests.sweeps import (
    CalmSweep,
    invocations,
    kill_run,
    read_state,
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


def test_kill_and_resume_at_many_points(tmp_path: Path, calm_sweep: CalmSweep) -> None:
    # Parallelism 1 fixes the order of results, so the sweep is fully determined by its seed.
    over: dict[str, Any] = {"parallelism": 1, "poll_interval_s": 0.05}
    reference = calm_sweep(**over).state  # the uninterrupted run (shared: tests/sweeps.py)

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


# -- a relaunch's clock -------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    """The loop's time, moved by the test only."""

    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float, wake_at: datetime | None = None) -> None:
        self.t += timedelta(seconds=seconds)


class OldProcess(Backend):
    """Every launched trial runs, dated like a process that started ``age`` before the clock's
    time: an earlier attempt's process that an idempotent launch found still running, or a stale
    record (``age`` None: it starts at its launch, like a fresh one, after ``pending`` polls)."""

    name = "old-process"

    def __init__(self, clock: Clock, age: timedelta | None, pending: int = 0) -> None:
        self.time, self.age, self.pending = clock, age, pending
        self.started: dict[str, datetime] = {}
        self.polls: dict[str, int] = {}
        self.cancelled: list[str] = []

    def launch(self, launch: Launch) -> None:
        now = self.time.now()
        self.started[launch.trial_id] = now - self.age if self.age is not None else now
        self.polls[launch.trial_id] = 0

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        out = {}
        for t in trial_ids:
            if t not in self.started:
                out[t] = TrialState(trial_id=t, phase="lost", reason="never started")
                continue
            self.polls[t] += 1
            if self.polls[t] <= self.pending:
                out[t] = TrialState(trial_id=t, phase="pending")
            else:
                out[t] = TrialState(trial_id=t, phase="running", started_at=self.started[t])
        return out

    def cancel(self, trial_id: str) -> None:
        self.cancelled.append(trial_id)
        self.started.pop(trial_id, None)

    def adopt(self) -> set[str]:
        return set()  # nothing survived the controller's death


def _loop(tmp: Path, backend: Backend, clock: Clock) -> Scheduler:
    text = yaml.safe_dump(synthetic_sweep(tmp, parallelism=2))
    spec = parse_sweep(text)
    store = FileStore(tmp / "store")
    state, bohb, journal = load_or_create(spec, text, store, clock.now())
    return Scheduler(spec, store, backend, bohb, state, clock=clock, journal=journal)


def _recorded_long_ago(tmp: Path, phase: str, attempts: int) -> None:
    """A sweep whose two first trials were left in ``phase`` a day ago by a killed controller."""
    clock = Clock(T0)
    s = _loop(tmp, OldProcess(clock, None), clock)
    s.tick()
    for t in s.state.trials.values():
        t.state, t.attempts, t.launched_at = phase, attempts, T0  # type: ignore[assignment]
        if phase != "LAUNCHED":  # ended: it waits for its relaunch
            t.ended_at, t.cancels = T0, int(phase == "CANCELLED")
    s.dirty = True
    s._save()


@pytest.mark.parametrize(
    ("phase", "attempts"),
    [("LAUNCHED", 1), ("LAUNCHED", 2), ("LOST", 1), ("CANCELLED", 1)],
    ids=["launched-first", "launched-retry", "lost", "cancelled"],
)
def test_a_relaunch_counts_its_deadline_from_its_own_launch(
    tmp_path: Path, phase: str, attempts: int
) -> None:
    _recorded_long_ago(tmp_path, phase, attempts)
    clock = Clock(T0 + DAY)
    backend = OldProcess(clock, age=DAY)  # says each relaunched attempt runs since a day ago
    s = _loop(tmp_path, backend, clock)
    s._adopt()
    s.tick()  # LAUNCHED ones are relaunched by _adopt, LOST and CANCELLED ones by this tick
    s.tick()
    for t in s.state.trials.values():
        if t.trial_id not in ("it0-c0-r0", "it0-c1-r0"):
            continue
        assert t.state == "RUNNING", (t.trial_id, t.error)
        assert t.launched_at == T0 + DAY and t.started_at == T0 + DAY  # the relaunch's moment
    assert backend.cancelled == []
    # the deadline still holds, counted from the relaunch
    clock.t = T0 + DAY + timedelta(seconds=32 + DEADLINE_SLACK_S + 1)  # budget 1: deadline 32 s
    s.tick()
    t = s.state.trials["it0-c0-r0"]
    assert t.state == "FAILED" and t.error == "deadline exceeded (32 s); cancelled"
    assert t.gpu_seconds == pytest.approx(32)  # charged from the relaunch, clamped to its deadline


def test_a_relaunched_trial_queues_from_its_own_launch(tmp_path: Path) -> None:
    _recorded_long_ago(tmp_path, "LAUNCHED", 1)
    clock = Clock(T0 + DAY)  # a day later: past trials.queue_timeout_s (24 h) from T0
    backend = OldProcess(clock, age=None, pending=1)  # pending at the first poll, then running
    s = _loop(tmp_path, backend, clock)
    s._adopt()
    s.tick()
    t = s.state.trials["it0-c0-r0"]
    assert t.state == "RUNNING" and t.launched_at == T0 + DAY and t.started_at is None
    s.tick()
    assert t.state == "RUNNING" and t.started_at == T0 + DAY and backend.cancelled == []
