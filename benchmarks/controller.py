"""Controller overhead: CPU per trial, store requests per poll, 100 and 1,000 running trials.

Trials are fake (a backend whose "trainer" publishes result.json and its inbox marker into a real
file store, as ``trainer/results.py`` does), so what is measured is the controller alone: BOHB
ask/tell, trial.json writes, the journal, polling.
Peers measured in the same run:
- CPU: BOHB's own ask/tell for the same number of trials (the floor any controller pays);
- polling: a poller that lists the sweep's ``trials/`` prefix, as a naive design would; its cost
  grows with every finished trial (S3 LIST returns 1,000 keys per request), ours does not.

    python -m benchmarks.controller [--trials 3000] [--running 100 1000]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from controller import log
from controller.backends.base import Backend, Launch, TrialState, WallClock
from controller.sweep.runner import load_or_create, new_bohb
from controller.sweep.scheduler import Scheduler
from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState
from trainer.contract import FILE_TRIAL, TrialResult, TrialSpec, trial_prefix
from trainer.results import publish
from trainer.store import FileStore, Store
from trainer.store.counting import CountingStore
from trainer.synthetic import synthetic_loss

SPACE = [
    {"name": "x", "type": "float", "low": -3.0, "high": 3.0},
    {"name": "y", "type": "float", "low": -3.0, "high": 3.0},
    {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
]


class FakeBackend(Backend):
    """Every poll ends the oldest ``finish_fraction`` of running trials (writes their result)."""

    name = "fake"

    def __init__(self, store: Store, sweep: str, finish_fraction: float = 0.1) -> None:
        self.store, self.sweep, self.fraction = store, sweep, finish_fraction
        self.running: dict[str, Launch] = {}
        self.configs: dict[str, tuple[dict, float]] = {}

    def launch(self, launch: Launch) -> None:
        self.running[launch.trial_id] = launch

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        ids = list(trial_ids)
        for trial_id in ids[: max(1, math.ceil(len(ids) * self.fraction))]:
            spec = TrialSpec.model_validate_json(
                self.store.get(f"{trial_prefix(self.sweep, trial_id)}/{FILE_TRIAL}")
            )
            publish(self.store, spec, TrialResult(trial_id=trial_id, status="ok", loss=0.5))
            self.running.pop(trial_id, None)
        return {t: TrialState(trial_id=t, phase="running") for t in ids}

    def cancel(self, trial_id: str) -> None:
        self.running.pop(trial_id, None)

    def adopt(self) -> set[str]:
        return set()


class TrainerSide(CountingStore):
    """Counts only the controller's requests: the fake trainer writes through ``inner``."""


def spec_for(root: Path, running: int, trials: int) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "name": f"bench-{running}",
            "space": {"parameters": SPACE},
            "budget": {"unit": "seconds", "min": 1, "max": 81, "eta": 3},
            "stop": {"max_trials": trials},
            "parallelism": running,
            "poll_interval_s": 0.001,
            "store": {"url": str(root)},
        }
    )


def run_controller(root: Path, running: int, trials: int) -> dict[str, float]:
    spec = spec_for(root, running, trials)
    inner = FileStore(root)
    store = TrainerSide(inner)
    backend = FakeBackend(inner, spec.name)
    state, bohb, journal = load_or_create(spec, "", store)
    # per tick: (trials running when it began, controller GETs during it, trials finished by then)
    ticks: list[tuple[int, int, int]] = []
    last = {"running": 0, "gets": 0}

    def on_tick(s: SweepState) -> None:
        gets = store.counts["get"]
        done = sum(t.done for t in s.trials.values())
        ticks.append((last["running"], gets - last["gets"], done))
        last["running"], last["gets"] = len(s.in_phase("RUNNING")), gets

    no_sleep = WallClock(sleep_fn=lambda _: None)
    scheduler = Scheduler(
        spec, store, backend, bohb, state, on_tick=on_tick, clock=no_sleep, journal=journal
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    scheduler.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    full = [t for t in ticks if t[0] == running]  # ticks that polled `running` trials
    t0 = time.perf_counter()
    keys = len(inner.list(f"{spec.name}/trials"))  # what a prefix-listing poller reads per poll
    list_s = time.perf_counter() - t0
    return {
        "trials": len(state.trials),
        "cpu_ms": cpu / len(state.trials) * 1e3,
        "wall_ms": wall / len(state.trials) * 1e3,
        "first_gets": full[0][1],
        "first_done": full[0][2],
        "last_gets": full[-1][1],
        "last_done": full[-1][2],
        "keys": keys,
        "list_ms": list_s * 1e3,
        "puts": store.counts["put"],
    }


def bohb_only(trials: int) -> float:
    """CPU ms per trial of BOHB ask/tell alone (the peer)."""
    spec = spec_for(Path("/nonexistent"), 1, trials)
    bohb = new_bohb(spec)
    cpu0 = time.process_time()
    for _ in range(trials):
        s = bohb.ask()
        assert s is not None
        bohb.tell(s.trial_id, synthetic_loss(s.config, s.budget, 81, 0))
    return (time.process_time() - cpu0) / trials * 1e3


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.controller")
    parser.add_argument("--trials", type=int, default=3000, help="trials per sweep")
    parser.add_argument("--running", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args(argv)
    log.setup(level=40)  # errors only: the benchmark's own output is the table
    peer = bohb_only(args.trials)
    print(f"BOHB ask/tell alone (peer): {peer:.3f} ms CPU per trial over {args.trials} trials")
    print(
        "running  trials  ctrl CPU ms/trial  x BOHB alone  wall ms/trial  "
        "GETs/poll early (done)  GETs/poll late (done)  list-poller keys/poll (S3 LIST pages)"
    )
    for running in args.running:
        with tempfile.TemporaryDirectory() as tmp:
            r = run_controller(Path(tmp), running, max(args.trials, running * 3))
        pages = math.ceil(r["keys"] / 1000)
        print(
            f"{running:7d}  {r['trials']:6.0f}  {r['cpu_ms']:17.3f}  {r['cpu_ms'] / peer:12.1f}  "
            f"{r['wall_ms']:13.3f}  {r['first_gets']:10.0f} ({r['first_done']:5.0f})  "
            f"{r['last_gets']:10.0f} ({r['last_done']:5.0f})  "
            f"{r['keys']:10.0f} ({pages})"
        )
    print(
        "GETs/poll: result.json reads of one poll tick with that many trials running, early and "
        "late in the sweep (finished trials so far in brackets): the results the inbox announced "
        "in that tick, independent of finished trials. A poller listing trials/ would read every "
        "key (2 per finished trial)."
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
