"""The simulated backend driven directly: trial.json files in a MemoryStore, Launch objects, and
virtual time advanced through its SimClock (``sleep`` as the loop does, ``advance_to`` to step
without jumps)."""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.backends.base import Backend, Ending, ExitCode, Launch, Resources, TrialState
from controller.backends.simulated import (
    AttemptRecord,
    SimClock,
    SimulatedBackend,
    SimulatedOptions,
    SyntheticObjective,
)
from trainer.contract import FILE_RESULT, FILE_TRIAL, BudgetUnit, TrialResult, TrialSpec
from trainer.store import NotFound, Store
from trainer.store.memory import MemoryStore

START = datetime(2024, 1, 1, tzinfo=UTC)
SWEEP = "sim"
CONFIG: dict[str, Any] = {"lr": 0.01, "width": 64, "act": "relu"}


def backend(
    store: Store | None = None,
    *,
    unit: BudgetUnit = "seconds",
    objective: Any = None,
    **options: Any,
) -> SimulatedBackend:
    """A backend with deterministic pod starts (30 s, no spread) unless told otherwise."""
    options = {"pod_start_s": 30.0, "pod_start_sd_s": 0.0, **options}
    return SimulatedBackend(
        SWEEP,
        store or MemoryStore(),
        SimulatedOptions(**options),
        objective=objective or SyntheticObjective(max_budget=100.0),
        budget_unit=unit,
        start=START,
    )


def trial(
    b: SimulatedBackend,
    tid: str,
    budget: float,
    *,
    unit: BudgetUnit = "seconds",
    seed: int = 0,
    config: dict[str, Any] | None = None,
    gpus: int = 0,
    deadline_s: float | None = None,
) -> Launch:
    """Write the trial's trial.json as the scheduler does; the Launch that points at it."""
    spec = TrialSpec(
        sweep=SWEEP,
        trial_id=tid,
        config=CONFIG if config is None else config,
        budget=budget,
        budget_unit=unit,
        seed=seed,
        store_root=b.store.root,
    )
    key = f"{spec.prefix}/{FILE_TRIAL}"
    b.store.put(key, spec.model_dump_json().encode())
    return Launch(
        sweep=SWEEP,
        trial_id=tid,
        trial_url=b.store.url(key),
        resources=Resources(gpus=gpus),
        deadline_s=deadline_s,
    )


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def step(b: SimulatedBackend, seconds: float) -> None:
    """Advance without jumping (every intermediate moment is visible)."""
    clock = b.clock()
    clock.advance_to(clock.elapsed_s + seconds)


def result(b: SimulatedBackend, tid: str) -> TrialResult:
    return TrialResult.model_validate_json(b.store.get(f"{SWEEP}/trials/{tid}/{FILE_RESULT}"))


def has_result(b: SimulatedBackend, tid: str) -> bool:
    return b.store.exists(f"{SWEEP}/trials/{tid}/{FILE_RESULT}")


def record(b: SimulatedBackend, tid: str, attempt: int = 1) -> AttemptRecord:
    return next(r for r in b.history if r.trial_id == tid and r.attempt == attempt)


def test_it_is_a_backend_with_its_own_clock() -> None:
    b = backend()
    typed: Backend = b  # the protocol, checked by mypy
    assert Backend in type(typed).__mro__  # and subclassed explicitly
    assert b.name == "simulated"
    assert b.capacity() is None
    assert isinstance(b.clock(), SimClock)
    assert b.clock().now() == START and b.clock().now().tzinfo is not None
    b.close()


def test_default_start_is_the_wall_clock_without_microseconds() -> None:
    clock = SimClock()
    assert clock.now().microsecond == 0
    assert abs((datetime.now(UTC) - clock.now()).total_seconds()) < 5
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2024, 1, 1))


def test_options_are_validated() -> None:
    for bad in ({"gpus": 0}, {"pod_start_s": -1}, {"crash_probability": 1.5}, {"typo": 1}):
        with pytest.raises(ValueError):
            SimulatedOptions(**bad)
    assert SimulatedOptions(gpus=None).gpus is None


# -- quota and admission ------------------------------------------------------------------------
def test_quota_admits_fifo_and_never_runs_more_than_it_allows() -> None:
    b = backend(gpus=4, pod_start_s=30.0, pod_start_sd_s=15.0, seed=3)
    ids = [f"t{i}" for i in range(10)]
    for i, tid in enumerate(ids):
        b.launch(trial(b, tid, 100.0 + 10 * i))
    admitted = [r.trial_id for r in b.history if r.admissions]
    assert admitted == ids[:4]  # exactly 4, the first launched
    assert {s.phase for s in b.poll(ids).values()} == {"pending"}
    peak = 0
    while b.adopt():
        states = b.poll(ids)
        running = sum(s.phase == "running" for s in states.values())
        peak = max(peak, running)
        assert running <= 4
        for s in states.values():
            if s.phase == "pending":
                assert s.started_at is None and s.run_s == 0.0  # queued time never counts
        step(b, 1.0)
    assert peak == 4 and b.totals.peak_slots == 4
    # admission in launch order, and at most 4 slots held at any event (sweep over the record)
    firsts = [record(b, tid).admissions[0] for tid in ids]
    assert firsts == sorted(firsts)
    edges = sorted(
        [(r.admissions[0], 1) for r in b.history] + [(r.ended_at or 0.0, -1) for r in b.history],
        key=lambda e: (e[0], e[1]),  # an end frees its slot before the admission it allows
    )
    held = 0
    for _, delta in edges:
        held += delta
        assert held <= 4
    for i, tid in enumerate(ids):
        rec = record(b, tid)
        rng = random.Random(f"3|{tid}|1")  # the attempt's own generator: its latency draw
        latency = max(0.0, rng.normalvariate(30.0, 15.0))
        (start, end), admitted_at = rec.periods[0], rec.admitted_at
        assert admitted_at is not None
        assert start == pytest.approx(admitted_at + latency)
        state = b.poll([tid])[tid]
        assert state.started_at == at(start) and state.ended_at == at(end)
        assert state.run_s == pytest.approx(100.0 + 10 * i)  # only the running time
    queued = record(b, "t9")
    assert queued.admitted_at is not None and queued.admitted_at > queued.launched_at


def test_a_trial_takes_its_gpus_in_slots_strict_fifo() -> None:
    b = backend(gpus=4)
    b.launch(trial(b, "big", 100.0, gpus=3))
    b.launch(trial(b, "two", 100.0, gpus=2))  # does not fit beside "big"
    b.launch(trial(b, "one", 100.0))  # would fit, but may not overtake "two"
    b.launch(trial(b, "huge", 100.0, gpus=8))  # never fits: pending, blocks nobody
    assert [r.trial_id for r in b.history if r.admissions] == ["big"]
    b.clock().run()
    assert record(b, "two").admitted_at == record(b, "big").ended_at == 130.0
    assert record(b, "one").admitted_at == 130.0  # admitted beside "two" (2 + 1 <= 4)
    states = b.poll(["huge"])
    assert states["huge"].phase == "pending" and "never admitted" in (states["huge"].reason or "")
    assert b.adopt() == {"huge"}
    b.cancel("huge")
    assert b.poll(["huge"])["huge"].exit_code == ExitCode.CANCELLED


def test_unlimited_quota_admits_every_launch_at_once() -> None:
    b = backend(gpus=None)
    for i in range(50):
        b.launch(trial(b, f"t{i}", 60.0, gpus=2))
    assert all(r.admitted_at == 0.0 for r in b.history)


# -- finishing ----------------------------------------------------------------------------------
class _SpyStore(MemoryStore):
    """Records the backend's view of the trial at the moment its result.json is written."""

    def __init__(self) -> None:
        super().__init__()
        self.backend: SimulatedBackend | None = None
        self.seen: list[TrialState] = []

    def put(self, key: str, data: bytes) -> None:
        super().put(key, data)
        if key.endswith(FILE_RESULT) and self.backend is not None:
            self.seen.append(self.backend.poll([key.split("/")[-2]])[key.split("/")[-2]])


def test_a_finish_writes_its_result_then_exits_zero() -> None:
    store = _SpyStore()
    b = backend(store, startup_s=20.0)
    store.backend = b
    b.launch(trial(b, "t1", 100.0, seed=7))
    step(b, 149.0)
    state = b.poll(["t1"])["t1"]
    assert state.phase == "running" and state.started_at == at(30.0)
    assert state.run_s == pytest.approx(119.0)
    assert not has_result(b, "t1")
    step(b, 1.0)
    assert [s.phase for s in store.seen] == ["running"]  # written first, exited after
    res = result(b, "t1")
    assert res.status == "ok" and res.trial_id == "t1"
    assert res.loss == SyntheticObjective(max_budget=100.0).loss(CONFIG, 100.0, 7)
    assert res.info.device == "simulated" and res.info.train_seconds == 100.0
    assert res.started_at == at(30.0) and res.finished_at == at(150.0)
    state = b.poll(["t1"])["t1"]
    assert (state.phase, state.exit_code, state.ending) == ("exited", 0, Ending.EXITED)
    assert state.run_s == pytest.approx(100.0 + 20.0)  # training + startup_s
    assert state.started_at == at(30.0) and state.ended_at == at(150.0)
    rec = record(b, "t1")
    assert (rec.result, rec.loss, rec.train_s, rec.lost_s) == ("ok", res.loss, 100.0, 0.0)
    assert rec.held_s == 150.0 and b.totals.slot_s_held == 150.0
    assert b.totals.slot_s_running == 120.0 and b.totals.slot_s_training == 100.0
    assert b.adopt() == set()


def test_epoch_budgets_train_budget_times_seconds_per_epoch() -> None:
    b = backend(unit="epochs", seconds_per_epoch=10.0)
    b.launch(trial(b, "t1", 3.0, unit="epochs"))
    b.clock().run()
    res = result(b, "t1")
    assert res.info.epochs == 3.0 and res.info.train_seconds == 30.0
    assert b.poll(["t1"])["t1"].ended_at == at(30.0 + 30.0)
    assert res.loss == synthetic(CONFIG, 3.0)


def synthetic(config: dict[str, Any], budget: float, seed: int = 0) -> float | None:
    return SyntheticObjective(max_budget=100.0).loss(config, budget, seed)


class _Failing:
    def loss(self, config: dict[str, Any], budget: float, seed: int) -> float | None:
        return None


def test_an_objective_without_a_loss_writes_a_failed_result() -> None:
    b = backend(objective=_Failing())
    b.launch(trial(b, "t1", 10.0))
    b.clock().run()
    res = result(b, "t1")
    assert res.status == "failed" and res.error and res.loss is None
    assert b.poll(["t1"])["t1"].exit_code == ExitCode.OK


# -- the trial.json channel ---------------------------------------------------------------------
def test_launch_reads_trial_json_from_the_store_like_a_trainer() -> None:
    b = backend()
    missing = Launch(sweep=SWEEP, trial_id="gone", trial_url=b.store.url("sim/trials/gone/x"))
    b.launch(missing)
    bad = trial(b, "bad", 10.0)
    b.store.put("sim/trials/bad/trial.json", b'{"not": "a spec"}')
    b.launch(bad)
    b.launch(trial(b, "unit", 10.0, unit="epochs"))  # the backend runs a seconds sweep
    outside = Launch(sweep=SWEEP, trial_id="out", trial_url="s3://bucket/sim/trials/out/x")
    b.launch(outside)
    ids = ["gone", "bad", "unit", "out"]
    assert {s.phase for s in b.poll(ids).values()} == {"pending"}  # the exit is an event
    b.clock().sleep(30.0)
    assert b.clock().elapsed_s == 30.0  # a wake-worthy end at 0: no jump
    states = b.poll(ids)
    assert {t: s.exit_code for t, s in states.items()} == {
        "gone": ExitCode.INFRA,
        "bad": ExitCode.BAD_TRIAL,
        "unit": ExitCode.BAD_TRIAL,
        "out": ExitCode.INFRA,
    }
    assert all(s.ended_at == START and s.started_at is None for s in states.values())
    assert not any(has_result(b, t) for t in ids)


def test_launch_is_idempotent_and_relaunch_is_a_new_attempt() -> None:
    b = backend(gpus=1)
    launch = trial(b, "t1", 100.0)
    b.launch(trial(b, "t0", 100.0))
    b.launch(launch)
    b.launch(launch)  # queued: no-op
    step(b, 140.0)
    b.launch(launch)  # starting: no-op
    step(b, 30.0)
    assert b.poll(["t1"])["t1"].phase == "running"
    b.launch(launch)  # running: no-op
    assert [r.trial_id for r in b.history] == ["t0", "t1"]
    b.clock().run()
    assert b.poll(["t1"])["t1"].phase == "exited"
    b.launch(launch)  # ended: a new attempt
    assert [(r.trial_id, r.attempt) for r in b.history][-1] == ("t1", 2)
    assert b.adopt() == {"t1"}
    assert b.poll(["never"])["never"].phase == "lost"
    b.forget("t1")
    assert b.poll(["t1"])["t1"].phase == "lost" and b.adopt() == set()


# -- cancel -------------------------------------------------------------------------------------
def test_cancel_frees_a_slot_for_the_next_queued_attempt() -> None:
    b = backend(gpus=1)
    for tid in ("a", "b", "c", "d"):
        b.launch(trial(b, tid, 1000.0))
    step(b, 50.0)  # "a" runs since 30
    b.cancel("a")
    state = b.poll(["a"])["a"]
    assert (state.phase, state.exit_code, state.ending) == (
        "exited",
        ExitCode.CANCELLED,
        Ending.CANCELLED,
    )
    assert state.ended_at == at(50.0) and state.run_s == pytest.approx(20.0)
    assert record(b, "b").admitted_at == 50.0  # the freed slot, at the cancel's moment
    step(b, 10.0)  # "b" is starting (its pod starts at 80): cancel frees the slot too
    b.cancel("b")
    assert record(b, "c").admitted_at == 60.0
    assert b.poll(["b"])["b"].started_at is None
    b.cancel("d")  # queued: ends now, never admitted
    assert b.poll(["d"])["d"].exit_code == ExitCode.CANCELLED and not record(b, "d").admissions
    b.cancel("d")  # ended: no error
    b.cancel("never-launched")
    b.clock().run()
    assert record(b, "c").ended_at == 60.0 + 30.0 + 1000.0
    assert b.totals.cancels == 3 and not has_result(b, "a")


def test_cancel_keeps_the_progress_up_to_the_last_checkpoint() -> None:
    b = backend(checkpoint_every_s=100.0)
    launch = trial(b, "t1", 1000.0)
    b.launch(launch)
    step(b, 30.0 + 250.0)
    b.cancel("t1")
    assert record(b, "t1").lost_s == pytest.approx(50.0)
    b.launch(launch)
    b.clock().run()
    second = record(b, "t1", 2)
    assert second.resumed_from_s == 200.0 and second.train_s == pytest.approx(800.0)
    assert result(b, "t1").info.resumed == 1


# -- preemption, crash, deadline ----------------------------------------------------------------
def test_a_preempted_attempt_requeues_and_resumes_from_its_checkpoint() -> None:
    b = backend(gpus=2, preemptions_per_gpu_hour=3600 / 300, checkpoint_every_s=60.0, seed=1)
    b.launch(trial(b, "t1", 1200.0))
    phases: list[str] = []
    while b.adopt():
        state = b.poll(["t1"])["t1"]
        if not phases or phases[-1] != state.phase:
            phases.append(state.phase)
        if state.phase == "pending" and len(phases) > 1:
            assert state.started_at is None and state.run_s == pytest.approx(record(b, "t1").run_s)
        step(b, 1.0)
    rec = record(b, "t1")
    assert rec.preemptions >= 2 and len(rec.admissions) == rec.preemptions + 1
    assert phases[:4] == ["pending", "running", "pending", "running"]
    # the lost work, recomputed from the record: training past the last checkpoint of each
    # period that did not finish
    progress, lost, resumed = 0.0, 0.0, 0
    for start, end in rec.periods[:-1]:
        reached = progress + (end - start)
        kept = (reached // 60.0) * 60.0
        lost += reached - kept
        progress = kept
        resumed += kept > 0  # the next period starts from a checkpoint
    assert rec.lost_s == pytest.approx(lost) and lost > 0
    assert rec.train_s == pytest.approx(1200.0 + lost)  # the budget plus the work lost
    state = b.poll(["t1"])["t1"]
    assert state.exit_code == 0 and state.run_s == pytest.approx(rec.run_s)
    assert rec.run_s == pytest.approx(sum(end - start for start, end in rec.periods))
    assert state.started_at == at(rec.periods[-1][0])
    assert result(b, "t1").info.resumed == resumed
    assert b.totals.preemptions == rec.preemptions


def test_preempted_attempts_queue_again_behind_the_quota() -> None:
    b = backend(gpus=4, preemptions_per_gpu_hour=20.0, checkpoint_every_s=30.0, seed=5)
    for i in range(12):
        b.launch(trial(b, f"t{i}", 600.0))
    b.clock().run()
    assert b.totals.preemptions > 0 and b.totals.peak_slots == 4
    assert b.totals.results == 12
    # never more than 4 slots held: a sweep over every admission and release of the record
    edges: list[tuple[float, int]] = []
    for r in b.history:
        ends = [end for _, end in r.periods]
        edges += [(a, 1) for a in r.admissions] + [(e, -1) for e in ends]
    held = 0
    for _, delta in sorted(edges):
        held += delta
        assert held <= 4


def test_crash_probability_one_exits_1_without_a_result() -> None:
    b = backend(crash_probability=1.0, checkpoint_every_s=10.0, startup_s=5.0)
    launch = trial(b, "t1", 100.0)
    b.launch(launch)
    b.clock().run()
    state = b.poll(["t1"])["t1"]
    assert (state.exit_code, state.ending) == (ExitCode.FAILED, Ending.EXITED)
    assert not has_result(b, "t1")
    rec = record(b, "t1")
    assert rec.ended_at is not None and 30.0 <= rec.ended_at < 30.0 + 5.0 + 100.0
    assert state.run_s == pytest.approx(rec.ended_at - 30.0)
    assert b.totals.crashes == 1
    b.launch(launch)  # a relaunch resumes from what the crashed attempt checkpointed
    b.clock().run()
    second = record(b, "t1", 2)
    assert second.resumed_from_s == pytest.approx(rec.train_s - rec.lost_s)
    assert second.exit_code == ExitCode.FAILED


def test_deadline_kills_at_deadline_of_running_time() -> None:
    b = backend(gpus=1, unit="epochs", seconds_per_epoch=60.0)
    b.launch(trial(b, "first", 1.0, unit="epochs"))  # makes "late" wait 90 s in the queue
    b.launch(trial(b, "late", 10.0, unit="epochs", deadline_s=300.0))  # trains 600 s
    b.clock().run()
    state = b.poll(["late"])["late"]
    assert (state.exit_code, state.ending) == (ExitCode.DEADLINE, Ending.DEADLINE)
    assert state.run_s == pytest.approx(300.0)  # the queue and pod start not counted
    assert state.started_at == at(90.0 + 30.0) and state.ended_at == at(90.0 + 30.0 + 300.0)
    assert not has_result(b, "late") and b.totals.deadline_kills == 1
    assert result(b, "first").status == "ok"


# -- the clock ----------------------------------------------------------------------------------
def test_sleep_jumps_to_the_next_wake_worthy_event_on_the_poll_grid() -> None:
    clock = SimClock(START)
    seen: list[tuple[str, float]] = []

    def note(name: str) -> Any:
        return lambda: seen.append((name, clock.elapsed_s))

    clock.call_at(10.0, note("admit"), wake=False)
    clock.call_at(95.0, note("end"), wake=True)
    clock.call_at(95.0, note("same-time"), wake=False)  # (time, sequence) order
    clock.call_at(100.0, note("after"), wake=False)
    clock.call_at(125.0, note("later"), wake=True)
    clock.sleep(30.0)
    assert clock.elapsed_s == 120.0 and clock.now() == at(120.0)  # ceil(95 / 30) × 30
    assert seen == [("admit", 10.0), ("end", 95.0), ("same-time", 95.0), ("after", 100.0)]
    clock.sleep(30.0)  # the next one, 125, is within the interval: no jump
    assert clock.elapsed_s == 150.0 and seen[-1] == ("later", 125.0)
    clock.sleep(30.0)  # nothing left: an ordinary tick
    assert clock.elapsed_s == 180.0
    clock.call_at(190.0, note("end-1"), wake=True)
    clock.call_at(400.0, note("end-2"), wake=True)
    clock.sleep(30.0)  # an end within the interval: wake at its end, never jump past the next
    assert clock.elapsed_s == 210.0 and seen[-1] == ("end-1", 190.0)
    clock.sleep(30.0)
    assert clock.elapsed_s == 420.0 and seen[-1] == ("end-2", 400.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 1000.0), st.booleans()), max_size=25),
    st.sampled_from([1.0, 7.0, 30.0, 45.5]),
)
def test_a_jump_skips_only_ticks_where_nothing_wake_worthy_happens(
    events: list[tuple[float, bool]], tick: float
) -> None:
    """Against a clock that ticks through every grid point: the same grid, the same events
    processed at each landing, and no wake-worthy event in a tick that was skipped."""
    clock = SimClock(START)
    done: list[int] = []
    for i, (t, wake) in enumerate(events):
        clock.call_at(t, lambda i=i: done.append(i), wake=wake)  # type: ignore[misc]
    previous = 0.0
    while clock.elapsed_s <= 1000.0:
        clock.sleep(tick)
        landed = clock.elapsed_s
        assert landed / tick == pytest.approx(round(landed / tick))  # on the grid
        assert sorted(done) == [i for i, (t, _) in enumerate(events) if t <= landed]
        assert done == sorted(done, key=lambda i: (events[i][0], i))  # (time, sequence) order
        skipped = [t for t, wake in events if wake and previous < t <= landed - tick]
        assert skipped == []
        previous = landed


def test_sleep_honours_wake_at_and_never_jumps_past_an_event_it_finds() -> None:
    clock = SimClock(START)
    ends: list[float] = []
    clock.call_at(1000.0, lambda: ends.append(clock.elapsed_s), wake=True)
    clock.sleep(30.0, wake_at=at(50.0))
    assert clock.elapsed_s == 60.0 and ends == []
    clock.sleep(30.0, wake_at=at(70.0))  # wake_at within the interval: an ordinary tick
    assert clock.elapsed_s == 90.0
    clock.sleep(30.0, wake_at=at(5000.0))
    assert clock.elapsed_s == 1020.0 and ends == [1000.0]

    # an end scheduled by a non-wake event found on the way (a pod start scheduling its end)
    def pod_start() -> None:
        clock.call_at(1170.0, lambda: None, wake=True)

    clock.call_at(1100.0, pod_start, wake=False)
    clock.sleep(30.0)
    assert clock.elapsed_s == 1020.0 + 5 * 30.0
    clock.sleep(0.0)
    assert clock.elapsed_s == 1170.0
    with pytest.raises(ValueError):
        clock.sleep(-1.0)


def test_the_loop_sees_an_end_at_the_first_tick_after_it() -> None:
    b = backend(gpus=1)
    b.launch(trial(b, "t1", 100.0))  # pod starts at 30, ends at 130
    b.launch(trial(b, "t2", 100.0))  # admitted at 130, starts at 160, ends at 260
    b.clock().sleep(30.0)
    assert b.clock().elapsed_s == 150.0
    assert b.poll(["t1"])["t1"].phase == "exited" and b.poll(["t2"])["t2"].phase == "pending"
    b.clock().sleep(30.0)
    assert b.clock().elapsed_s == 270.0 and b.poll(["t2"])["t2"].ended_at == at(260.0)


# -- determinism --------------------------------------------------------------------------------
OPTS: dict[str, Any] = {
    "gpus": 4,
    "pod_start_sd_s": 20.0,
    "preemptions_per_gpu_hour": 6.0,
    "crash_probability": 0.2,
    "checkpoint_every_s": 50.0,
    "startup_s": 7.0,
    "seed": 11,
}


def _run(tick: float, reverse: bool, *, order: list[int] | None = None, **opts: Any) -> Any:
    b = backend(**{**OPTS, **opts})
    ids = [f"t{i}" for i in range(30)]
    for i in order or range(30):
        b.launch(trial(b, ids[i], 50.0 + 37.0 * i, deadline_s=900.0))
    polled = ids[::-1] if reverse else ids
    while b.adopt():
        b.poll(polled)
        b.poll(polled[:3])
        b.clock().sleep(tick)
    results = {k: b.store.get(k) for k in b.store.list() if k.endswith(FILE_RESULT)}
    return sorted((dataclasses.astuple(r) for r in b.history), key=lambda r: (r[0], r[1])), results


def test_same_seed_same_history_whenever_and_however_it_is_polled() -> None:
    first = _run(7.0, reverse=False)
    assert first == _run(13.0, reverse=True)
    assert first == _run(60.0, reverse=False)
    assert first != _run(7.0, reverse=False, seed=12)
    history = first[0]
    assert any(r[12] for r in history)  # preemptions happened (field 12)
    assert {r[14] for r in history} >= {0, 1}  # some finished, some crashed (exit codes)


def test_launch_order_does_not_change_an_attempts_draws() -> None:
    shuffled = list(range(30))
    random.Random(4).shuffle(shuffled)
    assert _run(30.0, False, gpus=None) == _run(30.0, False, gpus=None, order=shuffled)


# -- speed --------------------------------------------------------------------------------------
def test_ten_thousand_trials_on_256_gpus_are_cheap() -> None:
    b = backend(
        unit="epochs",
        gpus=256,
        pod_start_sd_s=15.0,
        preemptions_per_gpu_hour=0.1,
        crash_probability=0.02,
    )
    launches = [
        trial(b, f"t{i}", float(3 ** (i % 5)), unit="epochs", config={"x": i / 1e4})
        for i in range(10_000)
    ]
    started = time.perf_counter()
    for launch in launches:
        b.launch(launch)
    b.clock().run()
    elapsed = time.perf_counter() - started
    assert b.totals.results + b.totals.crashes == 10_000
    assert b.totals.peak_slots == 256 and not b.adopt()
    assert elapsed < 30.0  # about 1 s here


def test_missing_result_key_is_not_found() -> None:
    b = backend()
    with pytest.raises(NotFound):
        result(b, "nothing")
