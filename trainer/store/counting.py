"""A store that delegates to another and counts requests per operation (benchmarks, tests)."""

from __future__ import annotations

import builtins
from collections import Counter
from pathlib import Path

from trainer.store.base import Store


class CountingStore(Store):
    """Delegates to ``inner`` and counts requests per operation; ``_after_put`` is a hook that
    sees every successful write (its operation, key and size)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.root = inner.root
        self.counts: Counter[str] = Counter()

    def get(self, key: str) -> bytes:
        self.counts["get"] += 1
        return self.inner.get(key)

    def get_limited(self, key: str, max_bytes: int) -> bytes:
        self.counts["get"] += 1
        return self.inner.get_limited(key, max_bytes)

    def put(self, key: str, data: bytes) -> None:
        self.counts["put"] += 1
        self.inner.put(key, data)
        self._after_put("put", key, len(data))

    def put_new(self, key: str, data: bytes) -> None:
        self.counts["put"] += 1
        self.inner.put_new(key, data)
        self._after_put("put_new", key, len(data))

    def put_file(self, path: str | Path, key: str) -> None:
        self.counts["put"] += 1
        self.inner.put_file(path, key)
        self._after_put("put_file", key, Path(path).stat().st_size)

    def exists(self, key: str) -> bool:
        self.counts["exists"] += 1
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        self.counts["list"] += 1
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.counts["delete"] += 1
        self.inner.delete(key)

    def list_after(self, prefix: str, start_after: str) -> builtins.list[str]:
        self.counts["list"] += 1
        return self.inner.list_after(prefix, start_after)

    def total(self) -> int:
        return sum(self.counts.values())

    def _after_put(self, op: str, key: str, size: int) -> None:
        """Called after every successful write (a subclass may record it, or stop the process)."""
