"""Start or resume one sweep: store, spec.yaml, state.json, BOHB, backend, then the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from controller import log
from controller.backends.base import Backend, WallClock
from controller.bohb import BOHB
from controller.sweep import cost, identity
from controller.sweep.backend import make_backend
from controller.sweep.identity import Change
from controller.sweep.journal import Journal, journal_prefix, load
from controller.sweep.scheduler import Scheduler
from controller.sweep.spec import SpecError, SweepSpec, parse_sweep
from controller.sweep.state import FILE_SPEC, SweepState, exit_code, utcnow
from controller.sweep.warmstart import load_prior
from trainer.store import NotFound, Store, StoreError, open_store


def one_blas_thread() -> None:
    """Pin this process's BLAS to one thread. The model's matrix products are small (64
    candidates x at most max_model_points / 2 rows): on a 2-core machine a second OpenBLAS thread
    made a KDE's ``pdf`` 1.1-1.3x slower at 512 and 1,024 rows (``python -m benchmarks.kde_cost``,
    docs/benchmarks.md), and its spinning is CPU the sweep pays. Only this process: trials
    inherit the environment, not the limit."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


class ResumeConflictError(ValueError):
    """The store already holds a sweep of this name with another objective (its identity)."""


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
    args = {k: v for k, v in BOHB.state_args(bohb_state).items() if k != "max_iterations"}
    return bohb_state.get("space"), args


def _stored_spec(store: Store, spec: SweepSpec) -> tuple[SweepSpec, str] | None:
    """The sweep's spec.yaml, parsed, and its text; None when there is none."""
    key = f"{spec.name}/{FILE_SPEC}"
    try:
        text = store.get(key).decode()
    except NotFound:
        return None
    try:
        return parse_sweep(text, store.url(key)), text
    except SpecError as exc:
        raise ResumeConflictError(
            f"{store.url(key)}: the stored sweep {spec.name!r} is not a valid sweep file "
            f"({'; '.join(exc.errors)}); give this sweep another `name` (or remove that one)"
        ) from None


def check_resume(stored: SweepSpec, spec: SweepSpec, url: str) -> list[Change]:
    """What changed from the stored spec; raises ResumeConflictError, listing each refused
    field with its old and new value, when any of them changes what a trial's loss means."""
    changes = identity.diff(stored, spec)
    refused = [c for c in changes if c.identity]
    if refused:
        lines = "".join(f"\n  {c.line()}" for c in refused)
        raise ResumeConflictError(
            f"{url}: sweep {spec.name!r} already exists with a different space, budget or bohb "
            "section, trainer, data or hardware (what a trial's loss means); these fields must "
            f"not change on resume:{lines}\nrestore them in the sweep file, or give this sweep "
            'another `name` (docs/sweep-spec.md, "Resume", lists what may change)'
        )
    return changes


def load_or_create(
    spec: SweepSpec, spec_text: str, store: Store, now: datetime | None = None
) -> tuple[SweepState, BOHB, Journal]:
    """The sweep's state, optimiser and journal: resumed from the store (snapshot + journal,
    BOHB rebuilt by replaying its log), or new (spec.yaml and the first snapshot written) and
    started at ``now`` (the loop's clock; default the wall clock). A resume that changes an
    identity field is refused before anything is written; other changes replace spec.yaml,
    the old text kept in the spec history (``identity.py``)."""
    key = f"{spec.name}/{FILE_SPEC}"
    stored = _stored_spec(store, spec)
    changes = check_resume(stored[0], spec, store.url(key)) if stored is not None else []
    loaded = load(store, spec.name)
    state = loaded.state if loaded is not None else None
    # read before anything is written: a refused warm start leaves no spec.yaml to resume
    priors = [load_prior(spec, url) for url in spec.bohb.warm_start] if loaded is None else []
    if stored is None:
        # spec.yaml lost beside a state.json: BOHB's snapshot still says what it searched
        if state is not None and _search(state.bohb) != _search(new_bohb(spec).state_dict()):
            raise ResumeConflictError(
                f"{store.url(key)}: a sweep named {spec.name!r} with a different space, budget "
                "or bohb section already exists; give this sweep another `name` (or remove "
                "that one)"
            )
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
        _record_changes(store, spec, stored, spec_text, changes)  # the state is sound
        # what the store holds, before the changes of this run's spec below
        journal = Journal(
            store, state, snapshot_bytes=loaded.snapshot_bytes, tail_bytes=loaded.tail_bytes
        )
        # The stop section may change on resume: the snapshot holds the old values.
        bohb.max_iterations = spec.stop.max_iterations
        state.gpu_hour_price = spec.stop.gpu_hour_price
        state.rung_prices = spec.rung_prices()
        # money at today's prices: each trial's device-seconds at its rung's class price
        state.cost = sum(
            cost.money(t.gpu_seconds, state.rung_prices[t.rung]) for t in state.trials.values()
        )
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
    _record_changes(store, spec, stored, spec_text, changes)  # a start that died early
    bohb = new_bohb(spec)
    for prior in priors:  # in BOHB's first snapshot: a resume never reads them again
        used = bohb.warm_start(prior.results)
        log.event(
            "sweep.warm_started",
            sweep=spec.name,
            source=prior.url,
            results=len(prior.results),
            used=used,
            skipped_budgets=prior.skipped,
        )
    now = now or utcnow()
    state = SweepState(
        sweep=spec.name,
        started_at=now,
        updated_at=now,
        bohb=bohb.state_dict(),
        budgets=list(bohb.budgets),
        gpu_hour_price=spec.stop.gpu_hour_price,
        rung_prices=spec.rung_prices(),
    )
    journal = Journal.start(store, state)
    state.bohb = {}  # the optimiser is the truth from here on (Journal.compact)
    log.event("sweep.started", sweep=spec.name, budgets=list(bohb.budgets), store=store.root)
    return state, bohb, journal


def _record_changes(
    store: Store,
    spec: SweepSpec,
    stored: tuple[SweepSpec, str] | None,
    spec_text: str,
    changes: list[Change],
) -> None:
    """An accepted change: spec.yaml describes the sweep as it runs from now on."""
    if stored is None or stored[1] == spec_text:
        return
    # the wall clock: when someone changed the file (the loop's clock may be a simulator's)
    entry = identity.replace_spec(store, spec.name, stored[1], spec_text, changes, utcnow())
    log.event(
        "sweep.spec_changed",
        sweep=spec.name,
        history=entry.n if entry else None,  # None: a rerun finished an interrupted change
        changes=[c.line() for c in changes],
    )


T = TypeVar("T")


class Wrap(Protocol):
    def __call__(self, part: str, target: T, /) -> T: ...


def _unwrapped(part: str, target: T, /) -> T:
    return target


def run_sweep(
    spec: SweepSpec,
    spec_text: str,
    *,
    store: Store | None = None,
    backend: Backend | None = None,
    on_tick: Callable[[SweepState], None] | None = None,
    cancel_on_interrupt: bool = False,
    wrap: Wrap | None = None,
) -> Outcome:
    """Start or resume the sweep and run it to its end. The backend's own clock (a simulator's)
    is the sweep's time when it has one. ``wrap(part, obj)`` may put a proxy in front of the
    store, the backend and the optimiser (``SweepMetrics.wrap`` times their calls)."""
    wrap = wrap or _unwrapped
    store = wrap("store", store or open_sweep_store(spec))
    if backend is None:
        try:
            backend = make_backend(spec, store)
        except ValueError as exc:
            raise BackendSetupError(str(exc)) from exc
    backend = wrap("backend", backend)
    try:
        clock = backend.clock() or WallClock()
        state, bohb, journal = load_or_create(spec, spec_text, store, clock.now())
        bohb = wrap("bohb", bohb)
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
    return Outcome(reason, exit_code(reason, spec.stop.goal is not None), state)
