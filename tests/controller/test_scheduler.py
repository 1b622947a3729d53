"""The scheduler loop in-process, with a scripted backend: launch failures, budget-held trials,
resume of trials recorded as LAUNCHED."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.base import Backend, Launch, TrialState, WallClock
from controller.sweep.runner import ResumeConflictError, load_or_create
from controller.sweep.scheduler import Scheduler
from controller.sweep.spec import parse_sweep
from tests.sweeps import synthetic_sweep
from trainer.contract import TrialResult, TrialSpec
from trainer.store import FileStore


class Scripted(Backend):
    """Trials "run" until the test finishes them; the first launch of `flaky` raises."""

    name = "scripted"

    def __init__(self, store: FileStore, flaky: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.store, self.flaky = store, set(flaky)
        self.launches: list[str] = []
        self.running: set[str] = set()

    def launch(self, launch: Launch) -> None:
        if launch.trial_id in self.flaky:
            self.flaky.discard(launch.trial_id)
            raise RuntimeError("API server said 503")
        self.launches.append(launch.trial_id)
        self.running.add(launch.trial_id)

    def finish(self, trial_id: str, loss: float = 0.5) -> None:
        spec = TrialSpec.model_validate_json(self.store.get(f"syn/trials/{trial_id}/trial.json"))
        result = TrialResult(trial_id=trial_id, status="ok", loss=loss, token=spec.token)
        self.store.put(f"syn/trials/{trial_id}/result.json", result.model_dump_json().encode())
        self.running.discard(trial_id)

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        return {
            t: TrialState(trial_id=t, phase="running" if t in self.running else "lost")
            for t in trial_ids
        }

    def cancel(self, trial_id: str) -> None:
        self.running.discard(trial_id)

    def adopt(self) -> set[str]:
        return set(self.running)


def _scheduler(tmp: Path, backend: Scripted | None = None, **over: Any) -> Scheduler:
    text = yaml.safe_dump(synthetic_sweep(tmp, **over))
    spec = parse_sweep(text)
    store = FileStore(tmp / "store")
    state, bohb, journal = load_or_create(spec, text, store)
    return Scheduler(
        spec,
        store,
        backend or Scripted(store),
        bohb,
        state,
        clock=WallClock(sleep_fn=lambda _: None),
        journal=journal,
    )


def test_a_failed_launch_is_retried(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    backend = Scripted(store, flaky={"it0-c0-r0"})
    s = _scheduler(tmp_path, backend)
    s.tick()
    t = s.state.trials["it0-c0-r0"]
    assert t.state == "LOST" and "launch failed: RuntimeError" in (t.error or "")
    s.tick()  # relaunched first, as attempt 2, before new trials
    t = s.state.trials["it0-c0-r0"]  # the same record (a new name: its state was narrowed above)
    assert t.state == "RUNNING" and t.attempts == 2 and backend.launches[-1] == "it0-c0-r0"


def test_a_trial_waits_for_budget_instead_of_overspending(tmp_path: Path) -> None:
    # deadline 10 s per trial, cap 15 device-seconds: only one trial fits at a time
    s = _scheduler(
        tmp_path,
        parallelism=2,
        trials={"timeout_s": 10},
        # wind_down off: this is about the per-trial reservation, not the bracket rule
        stop={"max_iterations": 1, "max_gpu_hours": 15 / 3600, "wind_down": False},
    )
    backend = s.backend
    assert isinstance(backend, Scripted)
    s.tick()
    states = [t.state for t in s.state.trials.values()]
    # the held trial does not block the ones behind it: BOHB is asked ahead, at most
    # `parallelism` trials waiting (here both wait too: they are the same size)
    assert states == ["RUNNING", "PENDING", "PENDING"]
    backend.finish("it0-c0-r0")
    s.tick()  # the result frees the reservation: the held trial launches (not a new one)
    assert s.state.trials["it0-c1-r0"].state == "RUNNING"
    assert [t.state for t in s.state.trials.values()] == [
        "SUCCEEDED",
        "RUNNING",
        "PENDING",
        "PENDING",  # asked ahead again: two wait, as many as `parallelism`
    ]
    assert s.state.gpu_seconds <= 15


def test_resume_launches_recorded_trials_once(tmp_path: Path) -> None:
    s = _scheduler(tmp_path, parallelism=2)
    s.tick()
    assert sorted(s.backend.launches) == ["it0-c0-r0", "it0-c1-r0"]  # type: ignore[attr-defined]
    # Pretend the controller died right after recording two more trials as LAUNCHED.
    for t in s.state.trials.values():
        t.state = "LAUNCHED"
    s.dirty = True
    s._save()
    store = FileStore(tmp_path / "store")
    backend = Scripted(store)
    backend.running = {"it0-c0-r0"}  # still running: adopted, not launched again
    backend.finish("it0-c1-r0")  # finished while no controller ran: its result is read
    again = _scheduler(tmp_path, backend, parallelism=2)
    again._adopt()
    assert "it0-c0-r0" not in backend.launches and "it0-c1-r0" not in backend.launches
    again.tick()
    assert again.state.trials["it0-c1-r0"].state == "SUCCEEDED"
    assert again.state.trials["it0-c0-r0"].state == "RUNNING"


def test_a_held_trial_takes_the_resumed_spec_deadline_and_gpus(tmp_path: Path) -> None:
    # deadline 10 s, cap 15 device-seconds: the second trial waits (PENDING) for budget. An
    # epochs budget on CUDA: there the GPU count does not change the objective, so it may change.
    over: dict[str, Any] = {
        "parallelism": 2,
        "stop": {"max_iterations": 1, "max_gpu_hours": 15 / 3600, "wind_down": False},
        "budget": {"unit": "epochs", "min": 1, "max": 9, "eta": 3},
    }
    s = _scheduler(tmp_path, trials={"timeout_s": 10}, trainer={"device": "cuda"}, **over)
    s.tick()
    held = s.state.trials["it0-c1-r0"]
    assert held.state == "PENDING" and held.deadline_s == 10
    # Resumed with a shorter trials.timeout_s: 10 + 5 fits the cap, so it launches now, and it
    # is accounted with the deadline and devices it is launched with.
    backend = s.backend
    assert isinstance(backend, Scripted)
    trainer = {"device": "cuda", "resources": {"gpus": 1}}
    again = _scheduler(tmp_path, backend, trials={"timeout_s": 5}, trainer=trainer, **over)
    again.tick()
    held = again.state.trials["it0-c1-r0"]
    assert held.state == "RUNNING" and held.deadline_s == 5 and held.gpus == 1
    assert again.state.trials["it0-c0-r0"].deadline_s == 10  # a running attempt keeps its own


def test_a_lowered_max_attempts_fails_a_lost_trial_on_resume(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    s = _scheduler(tmp_path, Scripted(store, flaky={"it0-c0-r0"}), trials={"max_attempts": 3})
    s.tick()
    assert s.state.trials["it0-c0-r0"].state == "LOST"
    backend = Scripted(store)
    again = _scheduler(tmp_path, backend, trials={"max_attempts": 1})
    again.tick()
    t = again.state.trials["it0-c0-r0"]
    assert t.state == "FAILED" and t.attempts == 1 and "it0-c0-r0" not in backend.launches
    assert t.error is not None and t.error.startswith("lost 1 time(s), last: launch failed")


def test_a_state_without_its_spec_yaml_still_refuses_another_search(tmp_path: Path) -> None:
    s = _scheduler(tmp_path)
    s.tick()
    spec_file = tmp_path / "store" / "syn" / "spec.yaml"
    spec_file.unlink()  # lost (a partial copy, a lifecycle rule): state.json alone remains
    store = FileStore(tmp_path / "store")
    changes: list[dict[str, Any]] = [{"bohb": {"seed": 8}}, {"budget": {"min": 2, "max": 18}}]
    for over in changes:
        text = yaml.safe_dump(synthetic_sweep(tmp_path, **over))
        with pytest.raises(ResumeConflictError, match="different space, budget or bohb"):
            load_or_create(parse_sweep(text), text, store)
        assert not spec_file.exists()
    text = yaml.safe_dump(synthetic_sweep(tmp_path))
    state, _, _ = load_or_create(parse_sweep(text), text, store)  # the same search resumes
    assert len(state.trials) == 2 and spec_file.read_text() == text


def test_an_unreadable_stored_spec_yaml_is_reported_as_such(tmp_path: Path) -> None:
    folder = tmp_path / "store" / "syn"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text("name: syn\nspace: [\n")
    text = yaml.safe_dump(synthetic_sweep(tmp_path))
    with pytest.raises(ResumeConflictError, match=r"spec.yaml.*not a valid sweep.*malformed YAML"):
        load_or_create(parse_sweep(text), text, FileStore(tmp_path / "store"))
    assert (folder / "spec.yaml").read_text() == "name: syn\nspace: [\n"


class Throttled(Scripted):
    """A backend that allows 3 launches per second from up to 4 threads, and records the
    threads in flight."""

    def __init__(self, store: FileStore) -> None:
        super().__init__(store)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.per_tick: list[int] = []

    def launch_rate(self) -> float | None:
        return 3.0

    def launch_concurrency(self) -> int | None:
        return 4

    def launch(self, launch: Launch) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.05)  # an API request: the pool overlaps them
        with self.lock:
            self.in_flight -= 1
            super().launch(launch)


def test_launches_are_concurrent_and_capped_per_tick(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    backend = Throttled(store)
    # poll every 2 s at 3 launches/s: at most 6 launches per tick, so a tick never blocks polls
    s = _scheduler(tmp_path, backend, parallelism=20, poll_interval_s=2, stop={"max_iterations": 9})
    launched = []
    for _ in range(4):
        before = len(backend.launches)
        s.tick()
        launched.append(len(backend.launches) - before)
    assert launched == [6, 6, 6, 2]  # 20 slots filled, 6 per tick
    assert 1 < backend.most_in_flight <= 4
    times = [t.launched_at for t in s.state.trials.values() if t.launched_at]
    assert len(set(times)) == len(times) == 20  # every launch timestamped on its own


class Milestones(Scripted):
    """Records what the loop tells the cluster."""

    def __init__(self, store: FileStore) -> None:
        super().__init__(store)
        self.told: list[tuple[str, str, bool]] = []

    def milestone(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.told.append((reason, message, warning))


def test_the_loop_tells_the_backend_its_milestones_and_trials_in_trouble(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    backend = Milestones(store)
    s = _scheduler(tmp_path, backend, stop={"max_iterations": 1})
    s.tick()
    first, second = sorted(backend.running)
    backend.finish(first, 0.3)
    backend.running.discard(second)  # its pod vanished without a result
    s.tick()
    told = {reason: (message, warning) for reason, message, warning in backend.told}
    assert set(told) == {"NewIncumbent", "TrialLost"}
    assert told["NewIncumbent"][0].endswith(f"({first})") and told["NewIncumbent"][1] is False
    assert told["TrialLost"][0].startswith(f"{second}: ") and told["TrialLost"][1] is True
    s._stop("max_gpu_hours")
    assert backend.told[-1][0] == "SweepStopped" and "max_gpu_hours" in backend.told[-1][1]
