"""The sweep's state in the store: a snapshot and a journal of small entries after it.

Layout under ``<root>/<sweep>/``::

    state.json                 the snapshot: the whole SweepState, BOHB's whole state included,
                               at journal position ``seq`` (0 when the sweep starts)
    journal/<seq:012d>.json    one entry per save after it: the trial records that changed, the
                               sweep's scalars (status, spend, incumbent) and the optimiser's
                               asks and tells since the previous entry (``ops``)

Why: rewriting the whole state on every poll costs O(trials) bytes per change, O(trials²) over a
sweep (1.2 GB written for an 8.5 MB state at 10k trials). An entry holds only what changed, so
the bytes written per change do not grow with the trial count. The snapshot is rewritten
(compaction) when the entries written since it outweigh it (and at least ``MIN_COMPACT_BYTES``),
so compaction adds at most about as many bytes as the entries themselves, and a restart reads the
snapshot plus at most about its size again.

BOHB's state in an entry is its log of asks and tells (``BOHB.take_ops``), not its state: a
restart rebuilds BOHB from the snapshot's state and replays the log (``BOHB.replay``), which hands
out the same trials in the same order without sampling again, so the result is exact.

One writer: entries are created with ``Store.put_new`` (create-if-absent: If-None-Match on S3,
link(2) on files). Two controllers on one sweep race for the next entry's key; the loser gets
``ConcurrentWriterError`` before it launches anything, because every launch is preceded by an
entry (the scheduler's write order). Entries are never deleted: a stale writer could otherwise
recreate one that compaction removed. They are the sweep's history, a few KB per trial.

Crash argument (a SIGKILL between any two writes): every write is atomic (one object, whole or
absent). An entry is written only after the previous one; the snapshot is rewritten only after
the entry it includes. A restart therefore finds a snapshot at position s and entries s+1..n
with no gap (``load`` refuses a gap, naming it); whatever the killed controller did after entry n
(trial.json, a launch) was recorded in entry n as LAUNCHED first, and the scheduler's restart
path (adopt, relaunch LAUNCHED trials idempotently) takes it from there. A snapshot written but
not yet followed by an entry leaves entries <= its position behind, which ``load`` skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from controller.sweep import snapshot
from controller.sweep.state import (
    FILE_STATE,
    TRIAL_FIELDS,
    StopReason,
    SweepState,
    SweepStatus,
    TrialRecord,
    utcnow,
)
from trainer.store import AlreadyExists, NotFound, Store, StoreError

JOURNAL = "journal"
MIN_COMPACT_BYTES = 256 * 1024
# A new sweep's snapshot straight to bytes (later snapshots: controller/sweep/snapshot.py)
_STATE: TypeAdapter[SweepState] = TypeAdapter(SweepState)


class ConcurrentWriterError(StoreError):
    """Another controller writes this sweep: the one that wrote the next entry first wins."""


class SweepScalars(BaseModel):
    """The sweep's own fields that change while it runs (the trial table aside)."""

    model_config = ConfigDict(extra="forbid")

    updated_at: datetime
    status: SweepStatus
    stop_reason: StopReason | None = None
    gpu_seconds: float = 0.0
    cost: float = 0.0
    gpu_hour_price: float = 0.0
    rung_prices: list[float] = []
    incumbent: dict[str, Any] | None = None

    @classmethod
    def of(cls, state: SweepState) -> SweepScalars:
        return cls.model_validate({f: getattr(state, f) for f in cls.model_fields})


class JournalEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    sweep: SweepScalars
    trials: dict[str, TrialRecord] = {}  # the records that changed, whole
    ops: list[dict[str, Any]] = []  # the optimiser's asks and tells, in order


def state_key(sweep: str) -> str:
    return f"{sweep}/{FILE_STATE}"


def journal_prefix(sweep: str) -> str:
    return f"{sweep}/{JOURNAL}"


def entry_key(sweep: str, seq: int) -> str:
    return f"{journal_prefix(sweep)}/{seq:012d}.json"  # fixed width: lexicographic = numeric


def _invalid(store: Store, key: str, what: str, exc: ValidationError) -> StoreError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return StoreError(
        f"{store.url(key)}: not a kubohb {what} ({exc.error_count()} error(s), first: "
        f"{where}: {first['msg']})"
    )


@dataclass
class Loaded:
    """A sweep's state rolled forward to its last journal entry."""

    state: SweepState  # state.seq = the last entry applied
    ops: list[dict[str, Any]] = field(default_factory=list)  # after the snapshot's BOHB state
    snapshot_bytes: int = 0
    tail_bytes: int = 0  # bytes of the entries after the snapshot


def load(store: Store, sweep: str) -> Loaded | None:
    """The snapshot plus every entry after it; None when the sweep has no state yet."""
    key = state_key(sweep)
    try:
        raw = store.get(key)
    except NotFound:
        return None
    try:
        state = SweepState.model_validate_json(raw)
    except ValidationError as exc:  # damaged or foreign: name the file, never overwrite it
        raise _invalid(store, key, "state file", exc) from None
    loaded = Loaded(state, snapshot_bytes=len(raw))
    for key in store.list_after(journal_prefix(sweep), entry_key(sweep, state.seq)):
        data = store.get(key)
        try:
            entry = JournalEntry.model_validate_json(data)
        except ValidationError as exc:
            raise _invalid(store, key, "journal entry", exc) from None
        if entry.seq != state.seq + 1 or key != entry_key(sweep, entry.seq):
            raise StoreError(
                f"{store.url(key)}: journal entry {entry.seq} where {state.seq + 1} was "
                "expected: the journal has a gap or a foreign object; do not edit it by hand"
            )
        apply(state, entry)
        loaded.ops.extend(entry.ops)
        loaded.tail_bytes += len(data)
    return loaded


def load_state(store: Store, sweep: str) -> SweepState | None:
    """The sweep's current state (for views: status, reports); its ``bohb`` is the snapshot's."""
    loaded = load(store, sweep)
    return None if loaded is None else loaded.state


def apply(state: SweepState, entry: JournalEntry) -> None:
    state.trials.update(entry.trials)  # known ids keep their place, new ones are appended
    for name, value in entry.sweep:
        setattr(state, name, value)
    state.seq = entry.seq


class Journal:
    """The one writer of a sweep's state: appends entries, compacts into the snapshot."""

    def __init__(
        self, store: Store, state: SweepState, *, snapshot_bytes: int = 0, tail_bytes: int = 0
    ) -> None:
        self.store = store
        self.sweep = state.sweep
        self.seq = state.seq
        self.snapshot_bytes = snapshot_bytes
        self.tail_bytes = tail_bytes
        self.entries = 0  # written by this writer
        self.bytes_written = 0
        self.track(state)

    @classmethod
    def start(cls, store: Store, state: SweepState) -> Journal:
        """A new sweep: its snapshot at position 0, created once (a second starter loses)."""
        data = _STATE.dump_json(state)
        try:
            store.put_new(state_key(state.sweep), data)
        except AlreadyExists:
            raise ConcurrentWriterError(
                f"{store.url(state_key(state.sweep))}: another controller started sweep "
                f"{state.sweep!r} at the same time; run one controller per sweep"
            ) from None
        journal = cls(store, state, snapshot_bytes=len(data))
        journal.bytes_written = len(data)
        return journal

    def append(
        self,
        state: SweepState,
        trials: list[TrialRecord],
        ops: list[dict[str, Any]],
        now: datetime | None = None,
    ) -> None:
        state.updated_at = now or utcnow()
        entry = JournalEntry(
            seq=self.seq + 1,
            sweep=SweepScalars.of(state),
            trials={t.trial_id: t for t in trials},
            ops=ops,
        )
        data = entry.model_dump_json().encode()
        key = entry_key(self.sweep, entry.seq)
        try:
            self.store.put_new(key, data)
        except AlreadyExists:
            raise ConcurrentWriterError(
                f"{self.store.url(key)}: another controller wrote this entry of sweep "
                f"{self.sweep!r} first; this one stops (run one controller per sweep)"
            ) from None
        self.seq = state.seq = entry.seq
        self.tail_bytes += len(data)
        self.bytes_written += len(data)
        self.entries += 1

    def due(self) -> bool:
        """Whether the entries since the snapshot outweigh it: time to compact."""
        return self.tail_bytes > max(MIN_COMPACT_BYTES, self.snapshot_bytes)

    def compact(self, state: SweepState, optimiser: dict[str, Any]) -> None:
        """Rewrite the snapshot at the last entry, with ``optimiser`` (BOHB's state now) as its
        ``bohb``. The state keeps no copy of it: in a running controller the optimiser object is
        the truth and ``state.bohb`` stays empty (a copy was 45 MB at 50,000 trials). Written in
        pieces through a local file (``snapshot.put``): the whole JSON is never in memory."""
        state.seq = self.seq
        size = snapshot.put(self.store, state_key(self.sweep), state, optimiser)
        self.snapshot_bytes, self.tail_bytes = size, 0
        self.bytes_written += size

    # -- what changed ----------------------------------------------------------------------------
    def track(self, state: SweepState) -> None:
        """Remember what the store holds of ``state`` (its open trials and its scalars), so that
        ``save`` writes only what changes from here on."""
        self._written = {t.trial_id: _fields(t) for t in state.trials.values() if not t.done}
        self._scalars = _scalars_json(state)

    def save(
        self,
        state: SweepState,
        trials: Iterable[TrialRecord],
        ops: list[dict[str, Any]],
        now: datetime,
        snapshot: Callable[[], dict[str, Any]],
    ) -> bool:
        """Append an entry with those of ``trials`` that changed (open ones, and ones that just
        finished), the optimiser's ``ops`` and the scalars, when any changed; compact when due or
        when the sweep has stopped (``snapshot`` gives the optimiser's state then). Returns
        whether anything was written."""
        changed: list[TrialRecord] = []
        for t in trials:
            fields = _fields(t)
            if self._written.get(t.trial_id) != fields:
                changed.append(t)
            if t.done:
                self._written.pop(t.trial_id, None)  # final: never written again
            else:
                self._written[t.trial_id] = fields
        scalars = _scalars_json(state)
        if not (changed or ops or scalars != self._scalars):
            return False
        self.append(state, changed, ops, now)
        self._scalars = scalars
        if self.due() or state.status != "running":
            self.compact(state, snapshot())
        return True


_fields: Callable[[TrialRecord], tuple[Any, ...]] = attrgetter(*TRIAL_FIELDS)
"""A record's field values, to tell whether it changed (much cheaper than its JSON; the loop
assigns new values, never mutates a dict or a datetime in place)."""


def _scalars_json(state: SweepState) -> str:
    return SweepScalars.of(state).model_dump_json(exclude={"updated_at"})
