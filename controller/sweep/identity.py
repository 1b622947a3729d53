"""What a resumed sweep must keep, what changed in its spec, and the history of ``spec.yaml``.

Identity: the fields that change what a trial's loss *means*. BOHB compares losses across trials
and budgets; a resume that trained on another data split, with another program, seed or precision
(or, for a ``seconds`` budget, on faster hardware) would mix two objectives in one model. Those
fields are refused on resume; everything else (caps, parallelism, timeouts, store and backend
tuning) may change. The list, with the reason for each field: docs/sweep-spec.md, "Resume".

History: an accepted change replaces ``spec.yaml``; the text it replaces is kept first, with the
diff, in ``<sweep>/spec-history/<n>.json`` (``n`` zero-padded: lexicographic = numeric), created
with ``put_new`` and never rewritten. Crash argument (a SIGKILL between the two writes): each
write is atomic; the entry is written before ``spec.yaml``, so the previous text is never lost.
An entry takes effect (is *committed*) when ``spec.yaml`` holds the text whose hash it records;
one killed before that holds ``previous == spec.yaml``, which a rerun with the same file finishes
(it writes ``spec.yaml`` and no second entry), and a rerun with another file leaves behind (a new
entry follows it). ``read_history`` returns committed entries only, so every rerun converges.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from controller.sweep.journal import ConcurrentWriterError
from controller.sweep.state import FILE_SPEC
from trainer.store import AlreadyExists, NotFound, Store, StoreError

if TYPE_CHECKING:
    from controller.sweep.spec import SweepSpec

HISTORY = "spec-history"

# Always part of the identity (docs/sweep-spec.md gives the reason for each).
ALWAYS = (
    "name",
    "space",
    "budget",
    "bohb",
    "trainer.command",
    "trainer.image",
    "trainer.env",  # the trainer reads its environment (the synthetic one its max budget)
    "trainer.dataset",
    "trainer.data.location",
    "trainer.data.subset",
    "trainer.data.val_size",
    "trainer.data.test_size",
    "trainer.seed",
    "trainer.max_params",
    "trainer.device",
    "trainer.amp",
    "backend.type",
    "backend.kubernetes.image",
    "backend.simulated.objective",
    # where the backend finds the sweep's running trials: elsewhere they would run twice
    "backend.local.run_dir",
    "backend.kubernetes.namespace",
)
# What picks the GPU (or CPU) model: its speed under a seconds budget, and, with AMP on a GPU,
# the precision (bf16 on Ampere and newer, fp16 before).
HARDWARE = (
    "backend.local.gpus",
    "backend.kubernetes.gpu_resource",
    "backend.kubernetes.node_selector",
    "backend.kubernetes.tolerations",
    "backend.kubernetes.affinity",
    "backend.kubernetes.runtime_class_name",
    "backend.kubernetes.kueue_queue",
    "backend.kubernetes.rungs",
)
# Speed alone: how much a seconds budget trains. (The trainer uses one device, so the count of
# GPUs matters to an epochs budget only where it decides CPU or GPU: see identity_paths.)
SPEED = (
    "trainer.resources",
    "trainer.compile",
    "trainer.num_workers",
)
_SECRET_NAME = re.compile(r"key|token|secret|passw|credential", re.IGNORECASE)
_SHOW_CHARS = 60
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w-]*")


def identity_paths(spec: SweepSpec) -> tuple[str, ...]:
    """The field paths (prefixes of leaf paths) that must not change on resume for ``spec``."""
    trainer = spec.trainer
    paths: tuple[str, ...] = ALWAYS
    if spec.budget.unit == "seconds":
        paths += HARDWARE + SPEED
    elif trainer.amp and trainer.device != "cpu" and trainer.resources.gpus > 0:
        paths += HARDWARE
    if spec.budget.unit == "epochs" and trainer.amp and trainer.device == "auto":
        paths += ("trainer.resources.gpus",)  # no GPU: fp32 on the CPU; some: AMP on one
    # the options of a backend the sweep does not use change nothing (backend.type is identity)
    options = type(spec.backend).model_fields  # type, then one section per backend
    unused = tuple(f"backend.{n}." for n in options if n not in ("type", spec.backend.type))
    return tuple(p for p in paths if not p.startswith(unused))


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaf path -> JSON value: mappings and lists of mappings are walked (``space.parameters[0]
    .high``); other lists, scalars and empty containers are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, _child(path, str(key))))
        return out
    if _records(value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{path}[{i}]"))
        return out
    return {path: value}


def _child(path: str, key: str) -> str:
    if not _PLAIN_KEY.fullmatch(key):  # a dotted label key: quoted, never ambiguous
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in prefixes)


def identity(spec: SweepSpec) -> dict[str, Any]:
    """Leaf path -> value of every identity field of ``spec``."""
    paths = identity_paths(spec)
    leaves = flatten(spec.model_dump(mode="json"))
    return {p: v for p, v in leaves.items() if _under(p, paths)}


_UNSET: Any = object()


@dataclass(frozen=True)
class Change:
    path: str
    old: Any = _UNSET
    new: Any = _UNSET
    identity: bool = False  # refused on resume

    def line(self) -> str:
        """``trainer.dataset: 'fashion_mnist' → 'cifar10'``, long values shortened."""
        return f"{self.path}: {self._show(self.old)} → {self._show(self.new)}"

    def record(self) -> dict[str, Any]:
        """For the history (secret-looking values masked; an unset side is left out)."""
        out: dict[str, Any] = {"path": self.path}
        for side in ("old", "new"):
            value = getattr(self, side)
            if value is not _UNSET:
                out[side] = "***" if self._secret() else value
        return out

    def _secret(self) -> bool:
        return bool(_SECRET_NAME.search(re.split(r"[.\[]", self.path)[-1]))

    def _show(self, value: Any) -> str:
        if value is _UNSET:
            return "(unset)"
        if self._secret():
            return "'***'"
        text = repr(value)
        return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def diff(old: SweepSpec, new: SweepSpec) -> list[Change]:
    """What differs, in field order: a leaf, or the whole of a list or section whose shape
    changed (``space.parameters: [...] → None``). ``identity`` marks refused changes: a path
    under an identity field of either spec (a changed budget unit is judged by both), or one
    holding such a field."""
    paths = identity_paths(old) + identity_paths(new)
    found = _walk(old.model_dump(mode="json"), new.model_dump(mode="json"), "")
    return [Change(p, a, b, _under(p, paths) or _holds(p, paths)) for p, a, b in found]


def _walk(a: Any, b: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in [*b, *(k for k in a if k not in b)]:
            out += _walk(a.get(key, _UNSET), b.get(key, _UNSET), _child(path, str(key)))
        return out
    if _records(a) and _records(b) and len(a) == len(b):  # parameters, rungs: item by item
        pairs = enumerate(zip(a, b, strict=True))
        return [x for i, (u, v) in pairs for x in _walk(u, v, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def _records(value: Any) -> bool:
    """A non-empty list of mappings: walked item by item, like a section."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _holds(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(p.startswith((f"{path}.", f"{path}[")) for p in prefixes)


# -- history ---------------------------------------------------------------------------------


class HistoryEntry(BaseModel):
    """``spec.yaml`` as it was before one accepted change, and what the change was."""

    model_config = ConfigDict(extra="forbid")

    n: int
    replaced_at: datetime
    previous_sha256: str
    spec_sha256: str  # of the text that replaced it: the entry is committed once spec.yaml has it
    changes: list[dict[str, Any]]  # Change.record(): path, old, new
    previous: str  # the replaced spec.yaml text


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _keys(store: Store, sweep: str) -> list[str]:
    return [k for k in store.list_after(f"{sweep}/{HISTORY}", "") if k.endswith(".json")]


def _entry(store: Store, key: str) -> HistoryEntry:
    try:
        return HistoryEntry.model_validate_json(store.get(key))
    except ValidationError as exc:  # edited or foreign: name it, never build on it
        raise StoreError(
            f"{store.url(key)}: not a kubohb spec history entry ({exc.error_count()} error(s)); "
            "entries are never rewritten: restore it or move it away"
        ) from None


def read_history(store: Store, sweep: str) -> list[HistoryEntry]:
    """The committed entries, oldest first (see the module docstring)."""
    entries = [_entry(store, k) for k in _keys(store, sweep)]
    try:
        current: str | None = sha256(store.get(f"{sweep}/{FILE_SPEC}").decode())
    except NotFound:
        current = None
    after = [e.previous_sha256 for e in entries[1:]] + [current]
    return [e for e, nxt in zip(entries, after, strict=True) if e.spec_sha256 == nxt]


def replace_spec(
    store: Store, sweep: str, old_text: str, new_text: str, changes: list[Change], now: datetime
) -> HistoryEntry | None:
    """Keep ``old_text`` in the history, then write ``new_text`` as spec.yaml. Returns the entry
    written (None when a rerun finished one a kill interrupted)."""
    keys = _keys(store, sweep)
    last = _entry(store, keys[-1]) if keys else None
    entry = None
    if not (last and last.previous == old_text and last.spec_sha256 == sha256(new_text)):
        entry = HistoryEntry(
            n=last.n + 1 if last else 1,
            replaced_at=now,
            previous_sha256=sha256(old_text),
            spec_sha256=sha256(new_text),
            changes=[c.record() for c in changes],
            previous=old_text,
        )
        key = f"{sweep}/{HISTORY}/{entry.n:06d}.json"
        try:
            store.put_new(key, entry.model_dump_json(indent=1).encode())
        except AlreadyExists:
            raise ConcurrentWriterError(
                f"{store.url(key)}: another controller changed the spec of sweep {sweep!r} at "
                "the same time; run one controller per sweep"
            ) from None
    store.put(f"{sweep}/{FILE_SPEC}", new_text.encode())
    return entry
