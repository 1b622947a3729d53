"""The scheduler loop: ask BOHB, launch on the backend, poll the store, tell BOHB, snapshot.

Write order (what makes a SIGKILL at any point safe):
1. a trial BOHB hands out, or one about to be (re)launched, is recorded in the journal as
   LAUNCHED (with BOHB's ask) *before* ``trial.json`` and ``backend.launch``;
2. after the launches of a tick the trials are RUNNING and the state is saved again;
3. each result is told to BOHB and saved in the same entry.
Each save appends one journal entry holding only what changed (``journal.py``).
A restart re-launches LAUNCHED trials (idempotent; skipped if their result is already there),
polls RUNNING ones, and re-asks BOHB from its snapshot, which hands out the same trials again.
Polling lists the sweep's inbox once and reads only the results it names, plus those of attempts
the backend says ended: O(new results) store requests per poll (``inbox.py``). How an attempt
ends (charged, told to BOHB, retried or not) is ``outcomes.py``.

Time comes from a ``Clock`` (the wall clock, or the simulator's virtual one). A trial's deadline
and cost count from when the backend says it *runs*; an attempt queued or pending longer than
``trials.queue_timeout_s`` is LOST, never FAILED (``timing.py``). A sweep cap, or Ctrl-C with
``cancel_on_interrupt``, cancels the running attempts as CANCELLED: they are not told to BOHB, and
a resumed sweep relaunches them (the trainer resumes from its checkpoint).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from controller import log
from controller.backends.base import Backend, Clock, Ending, ExitCode, TrialState, WallClock
from controller.bohb import Optimizer, trial_id_of
from controller.sweep import cost, timing
from controller.sweep.checkpoints import Checkpoints
from controller.sweep.inbox import Inbox
from controller.sweep.journal import Journal
from controller.sweep.launcher import Launcher, this_attempt
from controller.sweep.logs import keep_attempt_log
from controller.sweep.outcomes import Outcomes
from controller.sweep.spec import SweepSpec
from controller.sweep.state import EXIT_BY_REASON, StopReason, SweepState, SweepStatus, TrialRecord
from controller.sweep.trials import continued_budget, goal_met, jsonable, running_cost
from controller.sweep.winddown import WindDown
from trainer.store import Store

# The loop cancels a running attempt this long after its deadline: the trainer stops at its budget
# by itself, and the local backend's wrapper kills it at the deadline, well before.
DEADLINE_SLACK_S = 30.0


class Scheduler:
    def __init__(
        self,
        spec: SweepSpec,
        store: Store,
        backend: Backend,
        bohb: Optimizer,
        state: SweepState,
        *,
        on_tick: Callable[[SweepState], None] | None = None,
        clock: Clock | None = None,
        cancel_on_interrupt: bool = False,
        journal: Journal | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.backend = backend
        self.bohb = bohb
        self.state = state
        self.on_tick = on_tick
        self.clock = clock or backend.clock() or WallClock()
        self.cancel_on_interrupt = cancel_on_interrupt
        self.caps = cost.Caps(spec.stop.max_gpu_hours, spec.stop.max_cost, spec.stop.gpu_hour_price)
        self.prices = spec.rung_prices()  # money per device-hour by rung (cost.classes)
        self.deadline = spec.stop.deadline_at(state.started_at)
        capacity = backend.capacity()
        self.parallelism = min(spec.parallelism, capacity or spec.parallelism)
        self.dirty = False
        # Trials not finished yet, in table order: each poll scans these, never the finished ones.
        self.open = {k: t for k, t in state.trials.items() if not t.done}
        self._closing: list[TrialRecord] = []  # finished since the last save: written once more
        self.inbox = Inbox(store, state.sweep)
        needed = self._may_be_continued if spec.bohb.promotion_resume else None
        self.checkpoints = Checkpoints(store, state, spec.trials.keep_checkpoints, needed)
        self.wind_down = WindDown(spec, state, bohb, self.caps)
        self.outcomes = Outcomes(spec, state, bohb)
        # The journal knows what the store holds; a resumed sweep runs again (its caps may have
        # been raised) and is written as stopped again only if that changed, so re-running a
        # finished sweep writes nothing.
        self.journal = journal or Journal(store, state)
        self.launcher = Launcher(spec, state.sweep, store, backend, self.clock)
        state.status, state.stop_reason = "running", None

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> StopReason:
        """Run until the sweep ends; returns the stop reason.

        Ctrl-C (KeyboardInterrupt) propagates; with ``cancel_on_interrupt`` the running attempts
        are cancelled first and the sweep is saved as stopped ("interrupted"), otherwise they keep
        running and the next run adopts them."""
        try:
            self._adopt()
            done = sum(t.done for t in self.state.trials.values())
            self.backend.milestone(
                "SweepStarted",
                f"sweep {self.state.sweep}: "
                + (f"resumed with {done} trials done" if self.state.trials else "started")
                + f", budgets {', '.join(f'{b:g}' for b in self.spec.budgets())}",
            )
            while True:
                reason = self.tick()
                if self.on_tick:
                    self.on_tick(self.state)
                if reason:
                    return reason
                self.clock.sleep(self.spec.poll_interval_s, self._wake_at())
        except KeyboardInterrupt:
            if self.cancel_on_interrupt:
                self._stop("interrupted")
                self._save()
            raise

    def running_count(self) -> int:
        """Attempts handed to the backend and not ended (queued, pending or running)."""
        return len(self._open_in("LAUNCHED", "RUNNING"))

    def tick(self) -> StopReason | None:
        now = self.clock.now()
        before = self.state.incumbent
        self._poll(now)
        best = self.state.incumbent
        if best is not None and (before is None or before["trial_id"] != best["trial_id"]):
            self.backend.milestone(
                "NewIncumbent",
                f"loss {best['loss']:.4g} at budget {best['budget']:g} ({best['trial_id']})",
            )
        running = self._running_costs(now)  # every launched attempt, once per tick
        reason = self._check_limits(now, running)
        if reason is None:
            reason = self._fill(now, running)
        if reason:
            self._stop(reason)
        self._save()
        self.inbox.clear(self._unread)
        return reason

    def _unread(self, trial_id: str) -> bool:
        """An announced result not read yet (a store error): its marker stays."""
        t = self.open.get(trial_id)
        return t is not None and not t.done

    def _open_in(self, *phases: str) -> list[TrialRecord]:
        done = [k for k, t in self.open.items() if t.done]
        for k in done:
            self._closing.append(self.open.pop(k))
        return [t for t in self.open.values() if t.state in phases]

    # -- start and resume -------------------------------------------------------------------
    def _adopt(self) -> None:
        """Match the backend's live trials with the table; launch what was recorded but not sent."""
        live = self.backend.adopt()
        known = {t.trial_id for t in self._open_in("LAUNCHED", "RUNNING")}
        for trial_id in sorted(live - known):
            log.event("trial.orphan_cancelled", logging.WARNING, trial=trial_id)
            self.backend.cancel(trial_id)
        if live or known:
            log.event("sweep.adopted", running=len(live & known), not_running=len(known - live))
        self._launch_recorded()

    def _launch_recorded(self) -> None:
        """LAUNCHED trials were recorded, but the launch may or may not have happened."""
        recorded = self._open_in("LAUNCHED")
        first = [t.trial_id for t in recorded if t.attempts == 1]
        seen = self.backend.poll(first) if first else {}
        relaunch: list[TrialRecord] = []
        for t in recorded:
            self.dirty = True
            t.state = "RUNNING"  # from here on the normal poll handles it
            ts = seen.get(t.trial_id)
            if ts is not None and ts.phase != "lost":
                continue  # it started (a first attempt has no older exit to confuse)
            if self.inbox.read_result(t.trial_id, t.token) is not None:
                continue
            # Never started, or a retry whose old attempt's exit may still be on record:
            # launch() is idempotent and archives that old exit.
            relaunch.append(t)
        self._launch(relaunch, self.clock.now(), resumed=True)

    # -- polling ----------------------------------------------------------------------------
    def _poll(self, now: datetime) -> None:
        running = self._open_in("RUNNING")
        announced = self.inbox.poll()
        if not running:
            return
        read = self.inbox.read_result
        results = {
            t.trial_id: read(t.trial_id, t.token) for t in running if t.trial_id in announced
        }
        # Every running trial is polled, finished ones too: the backend says how long it ran.
        states = self.backend.poll([t.trial_id for t in running])
        for t in running:
            ts = this_attempt(t, states.get(t.trial_id), now)
            change = timing.observe(t, ts, now)
            if change:
                self.dirty = True
                waited = round(timing.waited_s(t, now), 1)
                log.event(f"trial.{change}", trial=t.trial_id, attempt=t.attempts, waited_s=waited)
            result = results.get(t.trial_id)
            if result is not None:
                self.outcomes.finish(t, result, now, ts)
            else:
                self._on_backend_state(t, ts, now)

    def _on_backend_state(self, t: TrialRecord, ts: TrialState | None, now: datetime) -> None:
        if ts is None or ts.phase in ("pending", "running"):
            self._check_clock(t, now)
            return
        # it may have landed between the inbox's listing and the poll
        result = self.inbox.read_result(t.trial_id, t.token)
        if result is not None:
            self.outcomes.finish(t, result, now, ts)
            return
        if ts.phase == "exited" and ts.exit_code and ts.ending != Ending.CANCELLED:
            self._keep_log(t)  # before a relaunch (or the cluster) deletes the attempt
        if ts.phase == "exited" and ts.ending == Ending.DEADLINE and not timing.has_run(t):
            # a backstop (a Job's activeDeadlineSeconds) ended an attempt that never ran
            why = "never started before the backend's deadline (queued or pending)"
            self.outcomes.lost(t, why, now)
        elif ts.phase == "exited" and ts.exit_code == ExitCode.BAD_TRIAL:
            self.outcomes.fail(
                t,
                f"trainer rejected the trial (exit code {ExitCode.BAD_TRIAL:d}): see its log",
                now,
            )
        elif ts.phase == "exited" and ts.ending == Ending.DEADLINE:
            self.outcomes.fail(t, f"deadline exceeded ({t.deadline_s:g} s)", now, ts=ts)
        else:
            why = ts.reason or f"exit code {ts.exit_code}"
            unreadable = self.inbox.unreadable.pop(t.trial_id, None)
            if ts.phase == "lost":
                lost = why
            elif unreadable is not None:
                lost = f"exited ({why}) but its result.json {unreadable}"
            else:
                lost = f"exited without a result ({why})"
            self.outcomes.lost(t, lost, now, ts)
            self.backend.milestone("TrialLost", f"{t.trial_id}: {lost}", warning=True)

    def _check_clock(self, t: TrialRecord, now: datetime) -> None:
        """The loop's own time rules for an attempt the backend still holds."""
        if timing.overdue_s(t, now, DEADLINE_SLACK_S) > 0:
            self._keep_log(t)  # a hung trainer: what it printed last, before the cancel
            self.backend.cancel(t.trial_id)
            self.outcomes.fail(t, f"deadline exceeded ({t.deadline_s:g} s); cancelled", now)
            return
        limit = self.spec.trials.queue_timeout_s
        if timing.queued_too_long_s(t, now, limit) > 0:
            self.backend.cancel(t.trial_id)
            why = f"queued or pending for more than trials.queue_timeout_s ({limit:g} s)"
            self.outcomes.lost(t, why, now)
            self.backend.milestone("TrialQueuedTooLong", f"{t.trial_id}: {why}", warning=True)

    def _keep_log(self, t: TrialRecord) -> None:
        keep_attempt_log(self.store, self.backend, self.state.sweep, t.trial_id, t.attempts)

    def _wake_at(self) -> datetime | None:
        """The earliest moment a time rule of the loop could fire (for a virtual clock): an
        attempt's deadline or queue limit, the sweep's deadline, a cap reached by the spend."""
        limit = self.spec.trials.queue_timeout_s
        running = self._open_in("RUNNING")
        times = [timing.next_check(t, DEADLINE_SLACK_S, limit) for t in running]
        if self.deadline is not None:
            times.append(self.deadline)
        if self.caps.any():
            now = self.clock.now()
            costs = [running_cost(t, now, self.prices[t.rung]) for t in running]
            spend = cost.accounted_spend(
                self.caps, self.state.gpu_seconds, costs, spent_money=self.state.cost
            )
            left = self.caps.left(spend)
            ticking = [c for c, t in zip(costs, running, strict=True) if t.started_at]
            rate_s = sum(cost.devices(c.gpus) for c in ticking)  # device-seconds per second
            rate_money = sum(cost.money(cost.devices(c.gpus), self.caps.price(c)) for c in ticking)
            for room, rate in ((left.device_s, rate_s), (left.money, rate_money)):
                if rate > 0 and room != float("inf"):
                    times.append(now + timedelta(seconds=max(0.0, room / rate)))
        return min((x for x in times if x is not None), default=None)

    # -- limits -----------------------------------------------------------------------------
    def _running_costs(self, now: datetime) -> list[cost.Running]:
        return [
            running_cost(t, now, self.prices[t.rung]) for t in self._open_in("LAUNCHED", "RUNNING")
        ]

    def _check_limits(self, now: datetime, running: list[cost.Running]) -> StopReason | None:
        if goal_met(self.spec, self.state):
            return "goal"
        if self.deadline is not None and now >= self.deadline:
            return "deadline"
        return cost.cap_hit(self.caps, self.state.gpu_seconds, running, spent_money=self.state.cost)

    def _stop(self, reason: StopReason) -> None:
        """The sweep ends: running attempts are cancelled, not failed (BOHB is not told), so a
        resumed sweep relaunches them, and they resume from their checkpoints."""
        now = self.clock.now()
        for t in self._open_in("LAUNCHED", "RUNNING"):
            self.backend.cancel(t.trial_id)
            self.outcomes.cancelled(t, reason, now)
        status: SweepStatus = "finished" if EXIT_BY_REASON[reason] == 0 else "stopped"
        self.state.status, self.state.stop_reason = status, reason
        best = self.state.incumbent
        self.backend.milestone(
            "SweepFinished" if status == "finished" else "SweepStopped",
            f"sweep {self.state.sweep} {status}: {reason}; "
            + (f"incumbent {best['trial_id']} loss {best['loss']:.4g}" if best else "no result"),
        )
        self.dirty = True  # the journal writes it only if it differs from what the store holds
        log.event("sweep.stopped", sweep=self.state.sweep, reason=reason)

    # -- launching --------------------------------------------------------------------------
    def _next_candidate(
        self, now: datetime, waiting: list[TrialRecord], *, may_ask: bool
    ) -> TrialRecord | None:
        """The first of ``waiting`` (LOST trials to retry, then CANCELLED ones, then trials handed
        out but never launched), or else, when ``may_ask``, a new one from BOHB."""
        if waiting:
            t = waiting.pop(0)
            # A new attempt runs as the spec says now (trials.* and trainer.resources may have
            # changed on resume): its deadline and devices are what the caps must check.
            t.deadline_s = self.spec.deadline_s(t.budget)
            t.reserve_s = self.spec.reserve_s(t.budget, continued_budget(self.spec, t))
            t.gpus = self.spec.trainer.resources.gpus
            return t
        max_trials = self.spec.stop.max_trials
        if max_trials is not None and len(self.state.trials) >= max_trials:
            return None
        if not may_ask:
            return None
        suggestion = self.bohb.ask()
        if suggestion is None:
            return None
        budget = float(suggestion.budget)
        lower = self._continues(suggestion.config_id, suggestion.rung)
        t = TrialRecord(
            trial_id=suggestion.trial_id,
            config_id=jsonable(suggestion.config_id),
            config=dict(suggestion.config),
            budget=float(suggestion.budget),
            rung=int(suggestion.rung),
            iteration=int(suggestion.iteration),
            model_based=bool(suggestion.model_based),
            gpus=self.spec.trainer.resources.gpus,
            deadline_s=self.spec.deadline_s(budget),
            reserve_s=self.spec.reserve_s(budget, 0.0 if lower is None else lower.budget),
            created_at=now,
            token=secrets.token_hex(8),
            continues=None if lower is None else lower.trial_id,
        )
        self.state.trials[t.trial_id] = t
        self.open[t.trial_id] = t
        self.dirty = True
        return t

    def _continues(self, config_id: str, rung: int) -> TrialRecord | None:
        """The succeeded trial at the rung below whose checkpoint a promotion to ``rung``
        continues (``bohb.promotion_resume``); None: it trains from scratch."""
        if not self.spec.bohb.promotion_resume or rung == 0:
            return None
        lower = self.state.trials.get(trial_id_of(config_id, rung - 1))
        return lower if lower is not None and lower.state == "SUCCEEDED" else None

    def _may_be_continued(self, t: TrialRecord) -> bool:
        """A promotion may still continue from ``t``'s checkpoint: BOHB has not decided it yet,
        or the promoted trial is out and not finished."""
        promoted = self.state.trials.get(trial_id_of(str(t.config_id), t.rung + 1))
        if promoted is not None:
            return promoted.continues == t.trial_id and not promoted.done
        return self.bohb.promotable(t.trial_id)

    def _fill(self, now: datetime, running: list[cost.Running]) -> StopReason | None:
        active = len(running)
        # scanned once per tick
        waiting = self._open_in("LOST") + self._open_in("CANCELLED") + self._open_in("PENDING")
        batch: list[TrialRecord] = []
        # Trials that do not fit a cap now stay waiting, keep their place, and do not block
        # the ones behind them; BOHB is asked for more only while fewer than `parallelism`
        # trials wait like that (a bounded look-ahead, never an unbounded pile of asks).
        pending = {t.trial_id for t in waiting if t.state == "PENDING"}
        blocked: StopReason | None = None  # the cap a waiting trial does not fit under
        per_tick = self.launcher.per_tick or self.parallelism
        while active + len(batch) < self.parallelism and len(batch) < per_tick:
            # before every ask: a bracket opened a moment ago is cut to the cap before it fills
            if self.wind_down.check(running):
                self.dirty = True
            t = self._next_candidate(now, waiting, may_ask=len(pending) < self.parallelism)
            if t is None:
                break
            # trials.max_attempts may have been lowered on resume since this trial was lost
            if t.state == "LOST" and self.outcomes.fail_if_out_of_attempts(t, t.error, now):
                continue
            reserve = cost.reservation(t.reserve_s, t.deadline_s)
            price = self.prices[t.rung]
            cap = cost.blocking(
                self.caps, self.state.gpu_seconds, running, reserve, t.gpus, self.state.cost, price
            )
            if cap is not None:
                blocked = cap  # it stays PENDING / LOST until running trials free the budget
                if t.state == "PENDING":
                    pending.add(t.trial_id)
                continue
            pending.discard(t.trial_id)
            t.state, t.attempts, t.launched_at, t.ended_at = "LAUNCHED", t.attempts + 1, now, None
            t.started_at, t.run_s = None, 0.0
            running.append(cost.Running(0.0, t.deadline_s, t.gpus, t.reserve_s, price))
            batch.append(t)
        if batch:
            self._save()  # recorded before anything is launched: see the module docstring
            self._launch(batch, now)
        if active + len(batch) > 0:
            return None
        if blocked:
            return blocked
        if self._open_in("LOST", "CANCELLED", "PENDING"):
            return None
        if self.bohb.finished:
            if self.wind_down.capped_by is not None or self.bohb.wound_down:  # a cap ended it
                return self.wind_down.capped_by or self.caps.binding()  # (binding: restarted)
            return "max_iterations" if self.spec.stop.max_iterations else "finished"
        if (
            self.spec.stop.max_trials is not None
            and len(self.state.trials) >= self.spec.stop.max_trials
        ):
            return "max_trials"
        raise RuntimeError("BOHB has no work and nothing runs: the optimiser state is inconsistent")

    def _launch(self, trials: list[TrialRecord], now: datetime, *, resumed: bool = False) -> None:
        """Hand the trials to the backend (concurrently where it allows); a failed launch is an
        API or store hiccup, retried like a lost trial."""
        for t in trials:
            t.state = "RUNNING"
        for t, error in zip(trials, self.launcher.launch(trials, resumed=resumed), strict=True):
            if error is None:
                log.event("trial.launched", trial=t.trial_id, budget=t.budget, attempt=t.attempts)
            else:
                self.outcomes.lost(t, f"launch failed: {type(error).__name__}: {error}", now)
        self.dirty = True

    def _save(self) -> None:
        """One journal entry with what changed: open trials, the ones just finished, BOHB's
        asks and tells since the last entry, the sweep's scalars."""
        if not (self.dirty or self.outcomes.changed):
            return
        self.dirty = self.outcomes.changed = False
        self._open_in()  # moves the trials done by now to _closing
        trials = [*self.open.values(), *self._closing]
        finished = self._closing
        self._closing = []
        self.journal.save(
            self.state, trials, self.bohb.take_ops(), self.clock.now(), self.bohb.state_dict
        )
        # after the entry: see its module; also without new results, for deletes that waited on
        # a promotion BOHB decided in this tick's asks
        self.checkpoints.prune(t for t in finished if t.done)
