"""The store in memory (``memory://<name>``), for simulations and tests.

Behaves as ``FileStore`` does (keys relative to the root, '.'/'..' refused, folder prefixes,
recursive sorted listings, NotFound naming the URL, idempotent delete) with no disk I/O, so a
simulated sweep of 10,000 trials writes its trial.json and result.json files at memory speed.
Not reachable from a URL: ``open_store`` knows nothing of it; pass the object itself.
"""

from __future__ import annotations

import builtins
import threading

from trainer.store.base import AlreadyExists, NotFound, Store, check_key


class MemoryStore(Store):
    """Objects in a dict; thread-safe; a put replaces the whole object at once (atomic). Each
    folder's direct children are indexed, so ``list_after`` (a journal's tail, an inbox) costs
    what the folder holds, not what the whole store holds."""

    def __init__(self, name: str = "sim") -> None:
        self.root = f"memory://{name}"
        self._objects: dict[str, bytes] = {}
        self._children: dict[str, set[str]] = {}  # folder -> keys directly in it
        self._lock = threading.Lock()

    def _store(self, k: str, blob: bytes) -> None:
        if k not in self._objects:
            self._children.setdefault(k.rpartition("/")[0], set()).add(k)
        self._objects[k] = blob

    def _key(self, key: str) -> str:
        k = check_key(key, self.url(key))
        if "//" in k or k.endswith("/"):  # as a file system path: empty parts do not count
            k = "/".join(part for part in k.split("/") if part)
        return k

    def get(self, key: str) -> bytes:
        k = self._key(key)
        with self._lock:
            data = self._objects.get(k)
        if data is None:
            raise NotFound(f"{self.url(k)}: no such object")
        return data

    def put(self, key: str, data: bytes) -> None:
        k, blob = self._key(key), bytes(data)
        with self._lock:
            self._store(k, blob)

    def put_new(self, key: str, data: bytes) -> None:
        k, blob = self._key(key), bytes(data)
        with self._lock:
            if k in self._objects:
                raise AlreadyExists(f"{self.url(k)}: already exists")
            self._store(k, blob)

    def exists(self, key: str) -> bool:
        k = self._key(key)
        with self._lock:
            return k in self._objects

    def list(self, prefix: str = "") -> list[str]:
        return list(self.list_sizes(prefix))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._key(prefix)
        folder = f"{base}/" if base else ""
        with self._lock:
            sizes = [(k, len(v)) for k, v in self._objects.items() if k.startswith(folder)]
        return dict(sorted(sizes))

    def delete(self, key: str) -> None:
        k = self._key(key)
        with self._lock:
            if self._objects.pop(k, None) is not None:
                self._children[k.rpartition("/")[0]].discard(k)

    def list_after(self, prefix: str, start_after: str) -> builtins.list[str]:
        folder = self._key(prefix)
        with self._lock:
            keys = [k for k in self._children.get(folder, ()) if k > start_after]
        return sorted(keys)
