"""The simulated backend: the real scheduler drives a simulated GPU cluster in virtual time.

Why: what a sweep costs and how long it takes depends on the cluster as much as on the search
(queueing for quota, pod start latency, preemptions, crashes, checkpoints). Running the real
scheduler loop against a model of those, in virtual time, measures a scheduling policy on a
10,000-trial sweep in seconds. The simulator sits behind the ordinary ``Backend`` seam, so what is
measured is the code that runs on a cluster, not a re-implementation of it.

Shape:
- The store is the only channel, as for a real trainer: ``launch`` reads ``trial.json`` from the
  store (the launch's ``trial_url`` relative to ``store.root``), and a finished attempt writes a
  ``TrialResult`` to ``<trial prefix>/result.json`` before it exits 0. A missing or unreadable
  trial.json ends the attempt with exit 75 (INFRA), an invalid one (or one whose budget unit is not
  the backend's) with exit 2, as the trainer would.
- One attempt per launch (attempt n = the n-th launch of that id). An attempt is queued, then
  admitted FIFO by launch order as slots free (strict FIFO, like a Kueue ClusterQueue: the head
  waits until it fits, nothing overtakes it; an attempt that needs more slots than the quota is
  never admitted and stays pending), then starts after a pod start latency (slots held, pending),
  then runs: ``startup_s`` without training, then ``total − progress`` training seconds. It ends by
  finishing (result written, exit 0), crashing (exit 1, no result), its deadline (``deadline_s`` of
  running time per running period, exit 124, ``Ending.DEADLINE``) or ``cancel`` (exit 143,
  ``Ending.CANCELLED``). A preemption is not an end: the attempt goes back to the queue keeping its
  progress up to its last checkpoint, and needs a new admission and pod start.
- Progress (checkpointed training seconds) belongs to the trial, not the attempt: a relaunched
  trial resumes from its last checkpoint, as the real trainer does from the store.
- Every random draw of an attempt comes from its own generator seeded by (seed, trial id,
  attempt): pod start latencies at each admission, the crash point at launch, the time to the next
  preemption at each pod start. Events run in (time, sequence) order on ``SimClock`` and polls
  change nothing, so the timeline does not depend on when or in which order the loop polls.
- Cost: each running period schedules exactly one event, its end (the earliest of finish,
  deadline, crash, preemption), and each admission one (the pod start); a cancel invalidates the
  pending one. State is in dicts by trial id and a heap for the queue: a poll costs O(ids polled),
  never a scan of the history.

Record (for benchmarks): ``history`` holds one ``AttemptRecord`` per launch, in launch order,
updated in place as the attempt goes (times in seconds from ``clock().start``): ``trial_id``,
``attempt``, ``slots``, ``train_total_s`` (the training seconds the budget needs; a continued
promotion's, the increment's), ``resumed_from_s``, ``launched_at``, ``admissions``
(``admitted_at`` = the first), ``periods`` (closed running periods ``(start, end)``) and
``running_since`` (the open one), ``train_s`` (training done, including work later lost),
``lost_s`` (training past the last checkpoint, lost to preemptions, a crash, a deadline or a
cancel), ``held_s`` (seconds its slots were held), ``preemptions``,
``ended_at``, ``exit_code``, ``ending``, ``reason``, ``result`` ("ok"/"failed", or None when none
was written) and ``loss``. ``totals`` (``SimTotals``) keeps sweep-wide sums, slot-weighted:
slot-seconds held (admission to each pod's end), running, training and lost, plus counts of
launches, results, crashes, deadline kills, cancels and preemptions, and the peak slots held.
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from controller import log
from controller.backends.base import Backend, Ending, ExitCode, Launch, TrialState
from controller.backends.simulated.clock import Event, SimClock
from controller.backends.simulated.objectives import Objective
from controller.backends.simulated.options import SimulatedOptions
from trainer.contract import BudgetUnit, TrialInfo, TrialResult, TrialSpec
from trainer.results import publish
from trainer.store import NotFound, Store, StoreError

__all__ = ["AttemptRecord", "SimTotals", "SimulatedBackend"]

# An attempt's phases (ints: compared on every event).
_QUEUED, _STARTING, _RUNNING, _EXITED = range(4)
_SPENT = random.Random(0)  # the generator of every ended attempt (never drawn from)
# How a running period ends, in order of precedence when two fall at the same time.
_FINISH, _DEADLINE, _CRASH, _PREEMPT = range(4)


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of one trial, as it happened (times in seconds from the clock's start)."""

    trial_id: str
    attempt: int
    slots: int  # GPU slots it takes: max(1, resources.gpus)
    launched_at: float
    train_total_s: float = 0.0  # training seconds the trial's budget needs
    resumed_from_s: float = 0.0  # checkpointed training progress it started from
    admissions: list[float] = field(default_factory=list)  # one per admission (preemptions)
    periods: list[tuple[float, float]] = field(default_factory=list)  # closed running periods
    running_since: float | None = None  # the open running period's start
    train_s: float = 0.0  # training seconds done, including work lost past a checkpoint
    lost_s: float = 0.0  # training seconds done past the last checkpoint and lost
    held_s: float = 0.0  # seconds its slots were held (admission to each pod's end)
    preemptions: int = 0
    ended_at: float | None = None
    exit_code: int | None = None
    ending: Ending | None = None
    reason: str | None = None
    result: Literal["ok", "failed"] | None = None  # the result.json it wrote, if any
    loss: float | None = None

    @property
    def admitted_at(self) -> float | None:
        return self.admissions[0] if self.admissions else None

    @property
    def run_s(self) -> float:
        """Seconds run over the closed periods (the open one not included)."""
        return sum(end - start for start, end in self.periods)


@dataclass(slots=True)
class SimTotals:
    """Sweep-wide sums over every attempt; slot-seconds are seconds × slots."""

    launches: int = 0
    results: int = 0  # attempts that wrote a result.json
    crashes: int = 0
    deadline_kills: int = 0
    cancels: int = 0
    preemptions: int = 0
    slot_s_held: float = 0.0  # admission to each pod's end (pod start latency included)
    slot_s_running: float = 0.0  # pod started to its end (startup_s included)
    slot_s_training: float = 0.0  # training, including work later lost
    slot_s_lost: float = 0.0  # training past the last checkpoint, lost
    peak_slots: int = 0  # most slots held at once


@dataclass(eq=False, slots=True)
class _Attempt:
    rec: AttemptRecord
    rng: random.Random
    order: int  # FIFO key: the launch's sequence number
    deadline_s: float | None
    spec: TrialSpec | None = None
    crash_run_s: float = math.inf  # cumulative running seconds at which it crashes
    phase: int = _QUEUED
    event: Event | None = None  # its one pending event (pod start, period end, refusal)
    held_since: float = 0.0
    run_s: float = 0.0  # closed running periods
    period_progress: float = 0.0  # the trial's progress when the open period started
    resumes: int = 0  # running periods that started from a checkpoint


class SimulatedBackend(Backend):
    """A simulated GPU cluster in virtual time (see the module docstring)."""

    name = "simulated"

    def __init__(
        self,
        sweep: str,
        store: Store,
        options: SimulatedOptions,
        *,
        objective: Objective,
        budget_unit: BudgetUnit = "seconds",
        start: datetime | None = None,
    ) -> None:
        self.sweep = sweep
        self.store = store
        self.options = options
        self.objective = objective
        self.budget_unit = budget_unit
        self.history: list[AttemptRecord] = []
        self.totals = SimTotals()
        self._clock = SimClock(start)
        self._current: dict[str, _Attempt] = {}  # the latest attempt of each trial id
        self._launches: dict[str, int] = {}
        self._progress: dict[str, float] = {}  # checkpointed training seconds, per trial
        self._open: set[str] = set()  # ids whose latest attempt has not exited
        self._queue: list[tuple[int, _Attempt]] = []  # (launch order, attempt); lazy deletion
        self._free: float = math.inf if options.gpus is None else float(options.gpus)
        self._held = 0
        self._order = 0
        self._rate = options.preemptions_per_gpu_hour / 3600.0  # per running slot-second

    # -- Backend ----------------------------------------------------------------------------
    def clock(self) -> SimClock:
        return self._clock

    def capacity(self) -> int | None:
        return None  # the quota is the admission queue's: the loop may launch more than fits

    def launch(self, launch: Launch) -> None:
        tid = launch.trial_id
        current = self._current.get(tid)
        if current is not None and current.phase != _EXITED:
            return  # idempotent: queued, starting or running
        now = self._clock.elapsed_s
        n = self._launches.get(tid, 0) + 1
        self._launches[tid] = n
        self._order += 1
        rec = AttemptRecord(tid, n, max(1, launch.resources.gpus), now)
        att = _Attempt(
            rec, random.Random(f"{self.options.seed}|{tid}|{n}"), self._order, launch.deadline_s
        )
        self._current[tid] = att
        self._open.add(tid)
        self.history.append(rec)
        self.totals.launches += 1
        spec = self._read_spec(launch, att)
        if spec is None:
            return
        att.spec = spec
        opts = self.options
        per_epoch = opts.seconds_per_epoch
        if opts.rung_seconds_per_epoch and launch.rung < len(opts.rung_seconds_per_epoch):
            per_epoch = opts.rung_seconds_per_epoch[launch.rung]  # the rung's device class
        budget = spec.budget - self._continued(spec)
        total = budget * (per_epoch if spec.budget_unit == "epochs" else 1.0)
        progress = min(self._progress.get(tid, 0.0), total)
        rec.train_total_s, rec.resumed_from_s = total, progress
        if opts.crash_probability and att.rng.random() < opts.crash_probability:
            att.crash_run_s = att.rng.random() * (opts.startup_s + total - progress)
        if opts.gpus is not None and rec.slots > opts.gpus:
            rec.reason = f"never admitted: needs {rec.slots} GPU slots, the quota is {opts.gpus}"
            return
        heapq.heappush(self._queue, (att.order, att))
        self._admit()

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        now = self._clock.elapsed_s
        at = self._clock.at
        states: dict[str, TrialState] = {}
        for tid in trial_ids:
            att = self._current.get(tid)
            if att is None:
                reason = "unknown: never launched, or forgotten"
                states[tid] = TrialState.model_construct(trial_id=tid, phase="lost", reason=reason)
                continue
            rec = att.rec
            if att.phase == _RUNNING:
                assert rec.running_since is not None
                states[tid] = TrialState.model_construct(
                    trial_id=tid,
                    phase="running",
                    started_at=at(rec.running_since),
                    run_s=att.run_s + now - rec.running_since,
                )
            elif att.phase == _EXITED:
                assert rec.ended_at is not None
                states[tid] = TrialState.model_construct(
                    trial_id=tid,
                    phase="exited",
                    exit_code=rec.exit_code,
                    ending=rec.ending,
                    reason=rec.reason,
                    started_at=at(rec.periods[-1][0]) if rec.periods else None,
                    run_s=att.run_s,
                    ended_at=at(rec.ended_at),
                )
            else:
                states[tid] = TrialState.model_construct(
                    trial_id=tid, phase="pending", reason=self._pending_reason(att), run_s=att.run_s
                )
        return states

    def cancel(self, trial_id: str) -> None:
        att = self._current.get(trial_id)
        if att is None or att.phase == _EXITED:
            return
        if att.event is not None:
            att.event.cancel()
        if att.phase == _RUNNING:
            self._keep_checkpoint(att, self._close_period(att))
        self.totals.cancels += 1
        self._exit(att, ExitCode.CANCELLED, Ending.CANCELLED, "cancelled")

    def adopt(self) -> set[str]:
        return set(self._open)

    def close(self) -> None:
        return None  # nothing to release: no process, no thread, no connection

    def forget(self, trial_id: str) -> None:
        """Drop a trial as a cluster loses a deleted Job (a live attempt is cancelled first);
        polls then say "lost". For tests of the loop's handling of lost trials."""
        self.cancel(trial_id)
        self._current.pop(trial_id, None)

    # -- the engine -------------------------------------------------------------------------
    def _read_spec(self, launch: Launch, att: _Attempt) -> TrialSpec | None:
        """The attempt's TrialSpec from the store, or None after scheduling its refusal."""
        root = self.store.root.rstrip("/") + "/"
        code, reason = ExitCode.INFRA, ""
        if not launch.trial_url.startswith(root):
            reason = f"trial url {launch.trial_url} is not in the store {self.store.root}"
        else:
            try:
                raw = self.store.get(launch.trial_url[len(root) :])
            except (NotFound, StoreError) as exc:
                reason = f"cannot read trial.json: {exc}"
            else:
                try:
                    spec = TrialSpec.model_validate_json(raw)
                except ValueError as exc:
                    code, reason = ExitCode.BAD_TRIAL, f"invalid trial spec: {exc}"
                else:
                    if spec.budget_unit == self.budget_unit:
                        return spec
                    code = ExitCode.BAD_TRIAL
                    reason = f"budget unit {spec.budget_unit}, the backend's is {self.budget_unit}"
        # As the trainer exits at once: an attempt end, at the launch's moment, seen next tick.
        att.event = self._clock.call_at(
            self._clock.elapsed_s,
            lambda: self._exit(att, code, Ending.EXITED, reason),
            wake=True,
        )
        return None

    def _continued(self, spec: TrialSpec) -> float:
        """The budget a promotion continues from (``continue_from``), as the trainer would: the
        lower trial must have finished with an ok result here (its final checkpoint; the
        controller's pruning keeps it for the promotion, ``sweep/checkpoints.py``). 0: from
        scratch."""
        lower = spec.continue_from
        if lower is None:
            return 0.0
        att = self._current.get(lower.trial_id)
        return lower.budget if att is not None and att.rec.result == "ok" else 0.0

    def _pending_reason(self, att: _Attempt) -> str:
        if att.phase == _STARTING:
            return "admitted, pod starting"
        if att.rec.reason:
            return att.rec.reason
        return "queued after a preemption" if att.rec.preemptions else "queued for quota"

    def _admit(self) -> None:
        """Admit queued attempts, oldest launch first, while the head fits (strict FIFO)."""
        queue, opts, clock = self._queue, self.options, self._clock
        while queue:
            att = queue[0][1]
            if att.phase != _QUEUED:  # cancelled while queued
                heapq.heappop(queue)
                continue
            slots = att.rec.slots
            if slots > self._free:
                return
            heapq.heappop(queue)
            now = clock.elapsed_s
            self._free -= slots
            self._held += slots
            self.totals.peak_slots = max(self.totals.peak_slots, self._held)
            att.phase, att.held_since = _STARTING, now
            att.rec.admissions.append(now)
            latency = opts.pod_start_s
            if opts.pod_start_sd_s:
                latency = max(0.0, att.rng.normalvariate(opts.pod_start_s, opts.pod_start_sd_s))
            att.event = clock.call_at(
                now + latency, functools.partial(self._start, att), wake=False
            )

    def _start(self, att: _Attempt) -> None:
        """The pod started: a running period begins; schedule its one end."""
        now = self._clock.elapsed_s
        rec, opts = att.rec, self.options
        att.phase, rec.running_since = _RUNNING, now
        progress = min(self._progress.get(rec.trial_id, 0.0), rec.train_total_s)
        att.period_progress = progress
        if progress > 0:
            att.resumes += 1
        end = (now + opts.startup_s + rec.train_total_s - progress, _FINISH)
        if att.deadline_s is not None:
            end = min(end, (now + att.deadline_s, _DEADLINE))
        if att.crash_run_s < math.inf:
            end = min(end, (now + max(0.0, att.crash_run_s - att.run_s), _CRASH))
        if self._rate:
            end = min(end, (now + att.rng.expovariate(self._rate * rec.slots), _PREEMPT))
        at, kind = end
        att.event = self._clock.call_at(
            at, lambda: self._end_period(att, kind), wake=kind != _PREEMPT
        )

    def _close_period(self, att: _Attempt) -> float:
        """End the open running period now; the trial's training progress at its end."""
        now = self._clock.elapsed_s
        rec = att.rec
        assert rec.running_since is not None
        ran = now - rec.running_since
        left = rec.train_total_s - att.period_progress
        trained = max(0.0, min(ran - self.options.startup_s, left))
        rec.periods.append((rec.running_since, now))
        rec.running_since = None
        att.run_s += ran
        rec.train_s += trained
        self.totals.slot_s_running += ran * rec.slots
        self.totals.slot_s_training += trained * rec.slots
        return att.period_progress + trained

    def _keep_checkpoint(self, att: _Attempt, progress: float) -> None:
        """An attempt stopped short of its end: keep its progress up to its last checkpoint."""
        every = self.options.checkpoint_every_s
        kept = min(progress, max(att.period_progress, math.floor(progress / every) * every))
        lost = progress - kept
        att.rec.lost_s += lost
        self.totals.slot_s_lost += lost * att.rec.slots
        self._progress[att.rec.trial_id] = kept

    def _end_period(self, att: _Attempt, kind: int) -> None:
        rec = att.rec
        att.event = None
        if kind == _FINISH:  # as a trainer: result.json last, while it still runs; then it exits
            self._write_result(att)
            self._progress[rec.trial_id] = self._close_period(att)
            self._exit(att, ExitCode.OK, Ending.EXITED, None)
            return
        self._keep_checkpoint(att, self._close_period(att))
        if kind == _PREEMPT:
            rec.preemptions += 1
            self.totals.preemptions += 1
            log.event("sim.preempted", logging.DEBUG, trial=rec.trial_id, attempt=rec.attempt)
            self._release(att)
            att.phase = _QUEUED
            heapq.heappush(self._queue, (att.order, att))
            self._admit()
        elif kind == _CRASH:
            self.totals.crashes += 1
            self._exit(att, ExitCode.FAILED, Ending.EXITED, "crashed (simulated)")
        else:
            self.totals.deadline_kills += 1
            reason = f"deadline: {att.deadline_s:g} s of running time"
            self._exit(att, ExitCode.DEADLINE, Ending.DEADLINE, reason)

    def _release(self, att: _Attempt) -> None:
        """Free the attempt's slots (admitted or running); the caller admits the next ones."""
        if att.phase in (_STARTING, _RUNNING):
            held = self._clock.elapsed_s - att.held_since
            att.rec.held_s += held
            self.totals.slot_s_held += held * att.rec.slots
            self._free += att.rec.slots
            self._held -= att.rec.slots

    def _exit(self, att: _Attempt, code: int, ending: Ending, reason: str | None) -> None:
        rec = att.rec
        self._release(att)
        # an ended attempt draws nothing and reads no spec: its generator (2.5 KB of state) and
        # spec were most of the simulator's memory at 50,000 trials
        att.phase, att.event, att.rng, att.spec = _EXITED, None, _SPENT, None
        rec.ended_at, rec.exit_code, rec.ending, rec.reason = (
            self._clock.elapsed_s, int(code), ending, reason
        )  # fmt: skip
        self._open.discard(rec.trial_id)
        self._admit()

    def _write_result(self, att: _Attempt) -> None:
        """As the trainer does last: result.json into the trial's folder of the store."""
        spec, rec = att.spec, att.rec
        assert spec is not None
        loss = self.objective.loss(dict(spec.config), spec.budget, spec.seed)
        first = rec.periods[0][0] if rec.periods else rec.running_since
        assert first is not None  # it runs
        now = self._clock.elapsed_s
        lower = spec.continue_from if self._continued(spec) > 0 else None
        info = TrialInfo(
            continued_from=None if lower is None else lower.trial_id,
            epochs=spec.budget if spec.budget_unit == "epochs" else None,
            train_seconds=rec.train_total_s,
            wall_seconds=now - first,
            device="simulated",
            resumed=att.resumes,
        )
        started, finished = self._clock.at(first), self._clock.at(now)
        if loss is None or not math.isfinite(loss):
            result = TrialResult(
                trial_id=spec.trial_id,
                status="failed",
                error="objective returned no loss" if loss is None else f"non-finite loss {loss}",
                info=info,
                started_at=started,
                finished_at=finished,
            )
        else:
            result = TrialResult(
                trial_id=spec.trial_id,
                status="ok",
                loss=loss,
                info=info,
                started_at=started,
                finished_at=finished,
            )
        publish(self.store, spec, result)
        rec.result, rec.loss = result.status, result.loss
        self.totals.results += 1
