"""A sweep's snapshot written to a local file piece by piece, then uploaded whole.

Why: serialising the whole state in one call held its JSON in memory once or twice over (38 MB at
50,000 trials, plus the serialiser's growing buffer): the controller's peak memory, at every
compaction. Written in pieces, the most held at once is one chunk of trial records or one of
BOHB's iterations. The file is the same JSON object (``SweepState`` reads it back; only the key
order differs: ``bohb`` and ``trials`` come last), and the store publishes it atomically.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pydantic_core
from pydantic import TypeAdapter

from controller.sweep.state import SweepState, TrialRecord
from trainer.store import Store

CHUNK = 1000  # trial records serialised at once (~600 KB of JSON)
_RECORDS: TypeAdapter[dict[str, TrialRecord]] = TypeAdapter(dict[str, TrialRecord])


def _to_json(value: Any) -> bytes:
    # pydantic's rules for an Any field, as the one-call dump had them (a non-finite float: null)
    return pydantic_core.to_json(value, inf_nan_mode="null")


def _object(f: IO[bytes], items: Iterator[tuple[str, Any]]) -> None:
    """A JSON object of ``items``; a list value is written one element at a time."""
    f.write(b"{")
    for i, (name, value) in enumerate(items):
        f.write(b"," if i else b"")
        f.write(_to_json(name) + b":")
        if isinstance(value, list):
            f.write(b"[")
            for j, element in enumerate(value):
                f.write((b"," if j else b"") + _to_json(element))
            f.write(b"]")
        else:
            f.write(_to_json(value))
    f.write(b"}")


def write(f: IO[bytes], state: SweepState, optimiser: dict[str, Any]) -> None:
    """``state`` as JSON with ``optimiser`` as its ``bohb`` (``state.bohb`` is not read)."""
    head = state.model_dump_json(exclude={"bohb", "trials"}).encode()
    f.write(head[:-1] + b',"bohb":')
    _object(f, iter(optimiser.items()))
    f.write(b',"trials":{')
    records = iter(state.trials.items())
    for i, chunk in enumerate(iter(lambda: dict(itertools.islice(records, CHUNK)), {})):
        f.write((b"," if i else b"") + _RECORDS.dump_json(chunk)[1:-1])
    f.write(b"}}")


def put(store: Store, key: str, state: SweepState, optimiser: dict[str, Any]) -> int:
    """Write the snapshot to ``key`` of ``store`` through a temporary local file; its size."""
    with tempfile.TemporaryDirectory(prefix="kubohb-snapshot-") as tmp:
        path = Path(tmp) / "state.json"
        with path.open("wb") as f:
            write(f, state, optimiser)
        store.put_file(path, key)
        return path.stat().st_size
