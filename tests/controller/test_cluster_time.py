"""Cluster time, end to end on the simulator (the real scheduler and BOHB in virtual time):
queued trials are neither cancelled nor charged, caps cancel instead of failing and a resumed
sweep continues, an attempt queued past trials.queue_timeout_s is LOST, and the simulator is
kept honest against the local backend."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.simulated import SimulatedBackend, SimulatedOptions, SyntheticObjective
from controller.sweep.journal import load_state
from controller.sweep.runner import Outcome, run_sweep
from controller.sweep.spec import parse_sweep
from controller.sweep.state import SweepState
from tests.sweeps import SPACE, read_state, run_json, synthetic_sweep, write_sweep
from trainer.store import Store
from trainer.store.memory import MemoryStore

PAPER = {"unit": "seconds", "min": 400, "max": 10800, "eta": 3}  # Zela et al.: 400 s ... 3 h


def sim_spec(**over: Any) -> dict[str, Any]:
    """A sweep on the simulator: the paper's budgets, the synthetic objective. The store URL is
    never opened: the tests hand the loop an in-memory store."""
    spec: dict[str, Any] = {
        "name": "sim",
        "space": {"parameters": SPACE},
        "budget": PAPER,
        "bohb": {"seed": 3},
        "stop": {"max_iterations": 4},
        "parallelism": 64,
        "poll_interval_s": 30,
        "trainer": {"dataset": "synthetic"},
        "store": {"url": "file:///nonexistent/kubohb-sim"},
        "backend": {"type": "simulated", "simulated": {"gpus": 4, "seed": 1}},
    }
    for key, value in over.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


def run(spec: dict[str, Any], store: Store, backend: SimulatedBackend | None = None) -> Outcome:
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    if backend is None:
        backend = SimulatedBackend(
            parsed.name,
            store,
            parsed.backend.simulated,
            objective=SyntheticObjective(parsed.budget.max),
        )
    return run_sweep(parsed, text, store=store, backend=backend)


def state_of(store: Store) -> SweepState:
    state = load_state(store, "sim")
    assert state is not None
    return state


def test_queued_trials_are_never_cancelled_or_charged() -> None:
    """A quota of 4 GPUs and parallelism 64: most trials wait far longer than their deadline."""
    store = MemoryStore()
    spec = sim_spec(stop={"max_iterations": 4, "gpu_hour_price": 2.5})
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    backend = SimulatedBackend(
        "sim", store, parsed.backend.simulated, objective=SyntheticObjective(10800)
    )
    outcome = run_sweep(parsed, text, store=store, backend=backend)
    assert (outcome.reason, outcome.exit_code) == ("max_iterations", 0)
    trials = outcome.state.trials.values()
    assert {t.state for t in trials} == {"SUCCEEDED"}  # zero FAILED, zero LOST
    assert all(t.attempts == 1 for t in trials)
    # the scenario: many trials waited longer than their whole deadline, and were not cancelled
    assert sum(t.queued_s > t.deadline_s for t in trials) >= 10
    # charged = the sum of running times (each attempt runs once, on one device), never the wait
    ran = sum(a.run_s for a in backend.history)
    assert ran == pytest.approx(backend.totals.slot_s_running)
    assert outcome.state.gpu_seconds == pytest.approx(ran)
    assert outcome.state.cost == pytest.approx(ran / 3600 * 2.5)
    ends = [a.ended_at for a in backend.history]
    assert None not in ends
    waits = [e - a.launched_at - a.run_s for a, e in zip(backend.history, ends, strict=True) if e]
    assert sum(t.queued_s for t in trials) == pytest.approx(sum(waits))
    # launched_at is each launch's own moment; started_at came from the backend (pod start)
    by_id = {a.trial_id: a for a in backend.history}
    for t in trials:
        a = by_id[t.trial_id]
        assert t.launched_at == backend.clock().at(a.launched_at)


def test_a_cap_cancels_and_a_resume_continues_to_the_same_results() -> None:
    """Stopped by its deadline, resumed with it raised: the same number of max-budget results as
    an uninterrupted sweep, nothing FAILED, the cancelled trials relaunched, not re-sampled."""
    reference = run(sim_spec(), MemoryStore())
    assert reference.reason == "max_iterations"
    top = reference.state.budgets[-1]
    expected = sum(
        t.budget == top and t.state == "SUCCEEDED" for t in reference.state.trials.values()
    )
    assert expected >= 2

    store = MemoryStore()
    first = run(sim_spec(stop={"max_iterations": 4, "deadline": "8h"}), store)
    assert (first.reason, first.exit_code) == ("deadline", 3)
    cancelled = {k for k, t in first.state.trials.items() if t.state == "CANCELLED"}
    assert cancelled, "the deadline fell while trials ran: the test lost its point"
    assert not [t for t in first.state.trials.values() if t.state == "FAILED"]
    snapshot = load_state(store, "sim")  # stopped: compacted, BOHB's state in the snapshot
    assert snapshot is not None
    told = set(snapshot.bohb["pending"])
    assert cancelled <= told  # never told to BOHB: still pending there
    # A new cluster (the simulator restarts) whose clock continues where the first one stopped.
    options = SimulatedOptions.model_validate({"gpus": 4, "seed": 1})
    later = first.state.updated_at + timedelta(minutes=5)
    backend = SimulatedBackend(
        "sim", store, options, objective=SyntheticObjective(10800), start=later
    )
    second = run(sim_spec(stop={"max_iterations": 4, "deadline": "1000h"}), store, backend)
    assert (second.reason, second.exit_code) == ("max_iterations", 0)
    final = state_of(store)
    got = sum(t.budget == top and t.state == "SUCCEEDED" for t in final.trials.values())
    assert got == expected
    assert {t.state for t in final.trials.values()} == {"SUCCEEDED"}
    for trial_id in cancelled:  # relaunched under the same id, as a second attempt
        t = final.trials[trial_id]
        assert (t.attempts, t.cancels) == (2, 1)
    assert cancelled <= {a.trial_id for a in backend.history}  # run on the new cluster


def test_an_attempt_queued_past_the_queue_limit_is_lost_not_failed() -> None:
    """Trials that need 2 GPUs on a 1-GPU quota are never admitted: LOST after the queue limit,
    relaunched up to max_attempts, then FAILED with the cause; nothing charged."""
    spec = sim_spec(
        stop={"max_trials": 3},
        parallelism=3,
        trainer={"dataset": "synthetic", "resources": {"gpus": 2}},
        trials={"queue_timeout_s": 3600, "max_attempts": 2},
        backend={"type": "simulated", "simulated": {"gpus": 1}},
    )
    store = MemoryStore()
    outcome = run(spec, store)
    trials = list(outcome.state.trials.values())
    assert len(trials) == 3 and all(t.state == "FAILED" for t in trials)
    for t in trials:
        assert t.attempts == 2
        assert t.error is not None and "trials.queue_timeout_s (3600 s)" in t.error
        assert t.error.startswith("lost 2 time(s)")
        assert t.queued_s == pytest.approx(2 * 3600, abs=2 * 30)  # detected within a poll
    assert outcome.state.gpu_seconds == 0.0


def test_ctrl_c_with_cancel_running_cancels_and_resume_finishes() -> None:
    store = MemoryStore()
    spec = sim_spec()
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    backend = SimulatedBackend(
        "sim", store, parsed.backend.simulated, objective=SyntheticObjective(10800)
    )
    ticks = 0

    def interrupt_later(state: SweepState) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            parsed, text, store=store, backend=backend, on_tick=interrupt_later,
            cancel_on_interrupt=True,
        )  # fmt: skip
    stopped = state_of(store)
    assert (stopped.status, stopped.stop_reason) == ("stopped", "interrupted")
    cancelled = [t for t in stopped.trials.values() if t.state == "CANCELLED"]
    assert cancelled and backend.adopt() == set()  # nothing left running on the "cluster"
    assert not [t for t in stopped.trials.values() if t.state == "FAILED"]
    outcome = run(spec, store)
    assert outcome.reason == "max_iterations"
    assert {t.state for t in outcome.state.trials.values()} == {"SUCCEEDED"}


def test_simulator_and_local_backend_run_the_same_trial_sequence(tmp_path: Path) -> None:
    """Same seed, same event order (parallelism 1): the same trials, configs, budgets and losses
    from the synthetic objective, whether trials are processes here or simulated."""
    local = synthetic_sweep(tmp_path, parallelism=1)
    code, _ = run_json(write_sweep(tmp_path, local))
    assert code == 0
    on_local = read_state(tmp_path / "store", "syn")["trials"]

    spec = {**local, "backend": {"type": "simulated", "simulated": {"gpus": 1}}}
    spec["store"] = {"url": "file:///nonexistent/kubohb-syn"}
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    store = MemoryStore("syn")
    backend = SimulatedBackend(
        "syn", store, parsed.backend.simulated, objective=SyntheticObjective(9)
    )  # the local sweep's trainer gets KUBOHB_MAX_BUDGET=9
    outcome = run_sweep(parsed, text, store=store, backend=backend)
    assert outcome.reason == "max_iterations"
    simulated = json.loads(outcome.state.model_dump_json())["trials"]

    def sequence(trials: dict[str, Any]) -> list[tuple[str, str, float, float | None, str]]:
        return [
            (k, json.dumps(t["config"], sort_keys=True), t["budget"], t["loss"], t["state"])
            for k, t in trials.items()
        ]

    assert sequence(simulated) == sequence(on_local)
    assert len(simulated) == 17


def _async_open_ended(stop: dict[str, Any]) -> tuple[Outcome, SimulatedBackend]:
    spec = sim_spec(
        bohb={"seed": 3, "promotion": "async"},
        stop={"max_iterations": None, **stop},
        parallelism=16,
        backend={"type": "simulated", "simulated": {"gpus": 16, "seed": 1}},
    )
    store = MemoryStore()
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    backend = SimulatedBackend(
        "sim", store, parsed.backend.simulated, objective=SyntheticObjective(10800)
    )
    return run_sweep(parsed, text, store=store, backend=backend), backend


def test_without_an_iteration_limit_every_slot_trains_until_the_deadline() -> None:
    """No max_iterations: BOHB keeps opening brackets (async promotions), and every GPU trains
    until the last launch; the only idle slot time is the pods' start (30 s +- 15 s each)."""
    outcome, backend = _async_open_ended({"deadline": "12h"})
    assert (outcome.reason, outcome.exit_code) == ("deadline", 3)
    assert len({t.iteration for t in outcome.state.trials.values()}) > 4  # kept opening brackets
    last_launch = max(a.launched_at for a in backend.history)
    assert last_launch > 11 * 3600
    training = sum(
        min(end, last_launch) - min(start, last_launch)
        for a in backend.history
        for start, end in a.periods
    )
    assert training / (16 * last_launch) > 0.95
    assert not [t for t in outcome.state.trials.values() if t.state == "FAILED"]


def test_without_an_iteration_limit_a_gpu_hour_cap_binds_and_is_never_passed() -> None:
    cap_h = 120.0  # about three Hyperband rounds of the paper's schedule (45 GPU-hours each)
    outcome, _ = _async_open_ended({"max_gpu_hours": cap_h})
    assert (outcome.reason, outcome.exit_code) == ("max_gpu_hours", 3)
    used_h = outcome.state.gpu_seconds / 3600
    # every launch reserves its running deadline (2 x budget + 120 s), so the last ones wait
    assert 0.8 * cap_h <= used_h <= cap_h
    assert {t.state for t in outcome.state.trials.values()} <= {"SUCCEEDED", "PENDING"}
