"""The store interface: ``Store`` and its errors, shared by the file and S3 implementations."""

from __future__ import annotations

import builtins
import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("kubohb.store")


class StoreError(RuntimeError):
    """A store operation failed; the message names the URL and the cause."""


class NotFound(StoreError):  # noqa: N818  (public API name)
    """The object does not exist."""


class AlreadyExists(StoreError):  # noqa: N818  (public API name)
    """``put_new`` found the object there already: someone else created it."""


class TooLarge(StoreError):  # noqa: N818  (public API name)
    """``get_limited`` found the object larger than its limit (``size``: bytes, when known)."""

    def __init__(self, url: str, size: int | None, max_bytes: int) -> None:
        what = f"{size:,} bytes" if size is not None else "larger"
        super().__init__(f"{url}: {what}, more than the {max_bytes:,} bytes this object may have")
        self.size, self.max_bytes = size, max_bytes


class Store(ABC):
    root: str

    def url(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key.lstrip('/')}"

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises NotFound."""

    def get_limited(self, key: str, max_bytes: int) -> bytes:
        """``get`` for an object its writer does not control the size of: raises TooLarge
        instead of reading more than ``max_bytes`` (S3: a ranged GET; files: stat first)."""
        data = self.get(key)
        if len(data) > max_bytes:
            raise TooLarge(self.url(key), len(data), max_bytes)
        return data

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write atomically, replacing any existing object."""

    @abstractmethod
    def put_new(self, key: str, data: bytes) -> None:
        """Create the object only if it does not exist (atomic create-if-absent); raises
        AlreadyExists otherwise. Two writers racing for one key: exactly one succeeds."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under the folder ``prefix`` (recursively, relative to the root), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it is absent."""

    def list_after(self, prefix: str, start_after: str) -> builtins.list[str]:
        """Keys directly in the folder ``prefix`` (not below it) sorting after ``start_after`` (a
        full key), sorted: the tail of a folder whose keys sort in the order they were written
        (S3: one request per 1,000 keys, from ``start_after`` on)."""
        base = prefix.strip("/")
        return [k for k in self.list(prefix) if k > start_after and "/" not in k[len(base) + 1 :]]

    def get_json(self, key: str) -> Any:
        raw = self.get(key)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"{self.url(key)}: not valid JSON ({exc})") from exc

    def put_json(self, key: str, obj: Any) -> None:
        self.put(key, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())

    def get_file(self, key: str, path: str | Path) -> None:
        """Download to a local file (atomically replaced)."""
        atomic_write(Path(path), self.get(key))

    def put_file(self, path: str | Path, key: str) -> None:
        self.put(key, Path(path).read_bytes())

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Like ``list``, with each object's size in bytes."""
        return {key: len(self.get(key)) for key in self.list(prefix)}

    def download_prefix(self, prefix: str, local_dir: str | Path) -> int:
        """Copy every object under ``prefix`` to ``local_dir`` (keeping the layout below prefix).

        Files already there with the same size are skipped, so a pod caches a data set once.
        Returns how many files were downloaded.
        """
        base = prefix.strip("/")
        local = Path(local_dir)
        local.mkdir(parents=True, exist_ok=True)
        downloaded = 0
        for key, size in self.list_sizes(base).items():
            rel = key[len(base) + 1 :] if base else key
            target = local.joinpath(*rel.split("/"))
            if target.is_file() and target.stat().st_size == size:
                continue
            self.get_file(key, target)
            downloaded += 1
        log.info(
            "event=store.download_prefix url=%s dir=%s downloaded=%d",
            self.url(base), local, downloaded,
        )  # fmt: skip
        return downloaded


def check_key(key: str, url: str) -> str:
    """The key without leading '/', refusing '.'/'..' parts (they would escape the root)."""
    key = key.lstrip("/")
    if any(part in (".", "..") for part in key.split("/")):
        raise StoreError(f"{url}: key escapes the store root ('.' or '..' in {key!r})")
    return key


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temp file, fsync, rename)."""
    atomic_fill(path, lambda f: f.write(data))


def atomic_copy(src: Path, path: Path) -> None:
    """Copy the file ``src`` to ``path`` whole or not at all, without reading it into memory."""
    with src.open("rb") as source:
        atomic_fill(path, lambda f: shutil.copyfileobj(source, f, 1 << 20))


def atomic_fill(path: Path, fill: Callable[[BinaryIO], object], *, durable: bool = True) -> None:
    """Replace ``path`` with what ``fill`` writes, whole or not at all (a temporary file renamed
    over it); ``durable``: fsync it first (a crash right after cannot leave it empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
