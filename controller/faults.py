"""Store wrappers for tests and benchmarks: request counting and a kill switch.

``KUBOHB_TEST_KILL_AFTER_WRITES=k`` makes ``kubohb run`` SIGKILL itself right after its k-th store
write, so the resume test can stop the controller at any chosen point of its protocol.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from trainer.store import Store

KILL_ENV = "KUBOHB_TEST_KILL_AFTER_WRITES"


class CountingStore(Store):
    """Delegates to another store and counts requests per operation."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.root = inner.root
        self.counts: Counter[str] = Counter()

    def get(self, key: str) -> bytes:
        self.counts["get"] += 1
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.counts["put"] += 1
        self.inner.put(key, data)
        self._after_put()

    def exists(self, key: str) -> bool:
        self.counts["exists"] += 1
        return self.inner.exists(key)

    def list(self, prefix: str) -> list[str]:
        self.counts["list"] += 1
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.counts["delete"] += 1
        self.inner.delete(key)

    def total(self) -> int:
        return sum(self.counts.values())

    def _after_put(self) -> None:
        pass


class KillAfterWrites(CountingStore):
    """SIGKILLs this process right after the k-th successful put (a test hook)."""

    def __init__(self, inner: Store, writes: int) -> None:
        super().__init__(inner)
        self.writes = writes

    def _after_put(self) -> None:
        if self.counts["put"] >= self.writes:
            os.kill(os.getpid(), signal.SIGKILL)


def from_env(store: Store) -> Store:
    value = os.environ.get(KILL_ENV)
    return KillAfterWrites(store, int(value)) if value else store
