"""Checkpoints in the store: torch.save to a local temp file, then one atomic ``put_file``.

Loading uses ``torch.load(weights_only=True)``: a checkpoint holds only tensors and plain Python
values, so nothing in it can run code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from trainer.store import NotFound, Store


def save(store: Store, key: str, state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="kubohb-ckpt-") as tmp:
        path = Path(tmp) / "checkpoint.pt"
        torch.save(state, path)
        store.put_file(path, key)


def load(store: Store, key: str) -> dict[str, Any] | None:
    """The checkpoint's state, or None when there is none. Store errors propagate (retriable)."""
    with tempfile.TemporaryDirectory(prefix="kubohb-ckpt-") as tmp:
        path = Path(tmp) / "checkpoint.pt"
        try:
            store.get_file(key, path)
        except NotFound:
            return None
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state
