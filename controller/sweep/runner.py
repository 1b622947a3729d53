"""Start or resume one sweep: store, spec.yaml, state.json, BOHB, backend, then the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from controller import log
from controller.backends.base import Backend, WallClock
from controller.bohb import BOHB
from controller.sweep import cost
from controller.sweep.backend import make_backend
from controller.sweep.journal import Journal, journal_prefix, load
from controller.sweep.scheduler import Scheduler
from controller.sweep.spec import SpecError, SweepSpec, parse_sweep
from controller.sweep.state import (
    EXIT_BY_REASON,
    FILE_SPEC,
    SweepState,
    utcnow,
)
from trainer.store import NotFound, Store, StoreError, open_store


class ResumeConflictError(ValueError):
    """The store already holds a sweep of this name with a different search."""


class BackendSetupError(ValueError):
    """The backend cannot run this sweep as configured (e.g. GPUs requested, none present)."""


@dataclass
class Outcome:
    reason: str
    exit_code: int
    state: SweepState


def open_sweep_store(spec: SweepSpec) -> Store:
    return open_store(
        spec.store.root_url(),
        endpoint_url=spec.store.endpoint_url,
        region=spec.store.region,
        outage_tolerance_s=spec.store.outage_tolerance_s,
    )


def new_bohb(spec: SweepSpec) -> BOHB:
    return BOHB(
        spec.space.build(),
        spec.budget.min,
        spec.budget.max,
        spec.budget.eta,
        spec.bohb.seed,
        max_iterations=spec.stop.max_iterations,
        **spec.bohb.knobs(),
    )


def _search(bohb_state: dict) -> tuple:
    """What a BOHB snapshot searches: its space and arguments (max_iterations may change)."""
    args = {k: v for k, v in bohb_state.get("args", {}).items() if k != "max_iterations"}
    args.setdefault("promotion", "sync")  # a snapshot from before the knob existed
    return bohb_state.get("space"), args


def load_or_create(
    spec: SweepSpec, spec_text: str, store: Store, now: datetime | None = None
) -> tuple[SweepState, BOHB, Journal]:
    """The sweep's state, optimiser and journal: resumed from the store (snapshot + journal,
    BOHB rebuilt by replaying its log), or new (spec.yaml and the first snapshot written) and
    started at ``now`` (the loop's clock; default the wall clock)."""
    key = f"{spec.name}/{FILE_SPEC}"
    try:
        old_text = store.get(key).decode()
    except NotFound:
        old_text = None
    conflict = ResumeConflictError(
        f"{store.url(key)}: a sweep named {spec.name!r} with a different space, budget or "
        "bohb section already exists; give this sweep another `name` (or remove that one)"
    )
    if old_text is not None:
        try:
            old = parse_sweep(old_text, store.url(key))
        except SpecError as exc:
            raise ResumeConflictError(
                f"{store.url(key)}: the stored sweep {spec.name!r} is not a valid sweep file "
                f"({'; '.join(exc.errors)}); give this sweep another `name` (or remove that one)"
            ) from None
        if old.identity() != spec.identity():
            raise conflict
    loaded = load(store, spec.name)
    state = loaded.state if loaded is not None else None
    if old_text is None:
        # spec.yaml lost beside a state.json: BOHB's snapshot still says what it searched
        if state is not None and _search(state.bohb) != _search(new_bohb(spec).state_dict()):
            raise conflict
        store.put(key, spec_text.encode())
    if loaded is not None and state is not None:
        bohb = BOHB.from_state_dict(state.bohb)
        state.bohb = {}  # the optimiser is the truth from here on (Journal.compact)
        try:
            bohb.replay(loaded.ops)
        except (KeyError, ValueError) as exc:
            raise StoreError(
                f"{store.url(journal_prefix(spec.name))}: the journal does not replay on the "
                f"snapshot's optimiser state ({exc}); the store was edited by hand?"
            ) from None
        # what the store holds, before the changes of this run's spec below
        journal = Journal(
            store, state, snapshot_bytes=loaded.snapshot_bytes, tail_bytes=loaded.tail_bytes
        )
        # The stop section may change on resume: the snapshot holds the old values.
        bohb.max_iterations = spec.stop.max_iterations
        state.gpu_hour_price = spec.stop.gpu_hour_price
        state.cost = cost.money(state.gpu_seconds, state.gpu_hour_price)
        done = sum(t.done for t in state.trials.values())
        log.event(
            "sweep.resumed",
            sweep=spec.name,
            trials=len(state.trials),
            done=done,
            journal_entries=state.seq,
            replayed=len(loaded.ops),
        )
        return state, bohb, journal
    bohb = new_bohb(spec)
    now = now or utcnow()
    state = SweepState(
        sweep=spec.name,
        started_at=now,
        updated_at=now,
        bohb=bohb.state_dict(),
        budgets=list(bohb.budgets),
        gpu_hour_price=spec.stop.gpu_hour_price,
    )
    journal = Journal.start(store, state)
    state.bohb = {}  # the optimiser is the truth from here on (Journal.compact)
    log.event("sweep.started", sweep=spec.name, budgets=list(bohb.budgets), store=store.root)
    return state, bohb, journal


def run_sweep(
    spec: SweepSpec,
    spec_text: str,
    *,
    store: Store | None = None,
    backend: Backend | None = None,
    on_tick: Callable[[SweepState], None] | None = None,
    cancel_on_interrupt: bool = False,
) -> Outcome:
    """Start or resume the sweep and run it to its end. The backend's own clock (a simulator's)
    is the sweep's time when it has one."""
    store = store or open_sweep_store(spec)
    if backend is None:
        try:
            backend = make_backend(spec, store)
        except ValueError as exc:
            raise BackendSetupError(str(exc)) from exc
    try:
        clock = backend.clock() or WallClock()
        state, bohb, journal = load_or_create(spec, spec_text, store, clock.now())
        scheduler = Scheduler(
            spec,
            store,
            backend,
            bohb,
            state,
            on_tick=on_tick,
            clock=clock,
            cancel_on_interrupt=cancel_on_interrupt,
            journal=journal,
        )
        reason = scheduler.run()
    finally:
        backend.close()
    return Outcome(reason, EXIT_BY_REASON[reason], state)
