"""Results announce themselves: a poll lists the sweep's inbox once and reads only the results it
names, so with hundreds of trials running and no new result a poll costs one store request."""

from __future__ import annotations

from datetime import datetime, timedelta

import yaml

from controller.backends.simulated import SimClock, SimulatedBackend, SyntheticObjective
from controller.sweep.runner import load_or_create
from controller.sweep.scheduler import Scheduler
from controller.sweep.spec import parse_sweep
from controller.sweep.state import SweepState
from tests.controller.test_cluster_time import sim_spec
from trainer.contract import inbox_prefix
from trainer.store.counting import CountingStore
from trainer.store.memory import MemoryStore


class EveryPoll:
    """The simulator's clock, ticking through every poll interval instead of jumping to the
    next event (so there are polls at which nothing new happened)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return self.clock.now()

    def sleep(self, seconds: float, wake_at: datetime | None = None) -> None:
        self.clock.sleep(seconds, self.clock.now() + timedelta(seconds=seconds))


def test_a_poll_without_new_results_costs_one_listing() -> None:
    inner = MemoryStore()
    controller_side = CountingStore(inner)  # the simulated trainers write through `inner`
    spec = sim_spec(
        bohb={"seed": 3, "promotion": "async"},
        stop={"max_iterations": None, "max_trials": 600},
        parallelism=256,
        backend={"type": "simulated", "simulated": {"gpus": 256, "seed": 1}},
    )
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text)
    backend = SimulatedBackend(
        "sim", inner, parsed.backend.simulated, objective=SyntheticObjective(10800)
    )
    per_tick: list[tuple[int, int, int]] = []  # (running, requests, trials done so far)
    last = {"requests": 0}

    def on_tick(state: SweepState) -> None:
        total = controller_side.total()
        done = sum(t.done for t in state.trials.values())
        running = len(state.in_phase("RUNNING"))
        per_tick.append((running, total - last["requests"], done))
        last["requests"] = total

    clock = EveryPoll(backend.clock())
    state, bohb, journal = load_or_create(parsed, text, controller_side, clock.now())
    scheduler = Scheduler(
        parsed, controller_side, backend, bohb, state, on_tick=on_tick, clock=clock,
        journal=journal,
    )  # fmt: skip
    assert scheduler.run() == "max_trials"
    quiet = [
        requests
        for (running, requests, done), (_, _, done_before) in zip(
            per_tick[1:], per_tick[:-1], strict=True
        )
        if done == done_before and running >= 200
    ]
    assert len(quiet) >= 5, "no tick with many trials running and no new result"
    assert max(quiet) <= 3  # the inbox listing (and at most a journal entry)
    assert min(quiet) == 1
    assert inner.list_after(inbox_prefix("sim"), "") == []  # every marker was cleared
