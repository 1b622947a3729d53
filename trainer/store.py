"""Object store under a root URL: ``file:///dir`` or ``s3://bucket/prefix`` (torch-free).

Keys are '/'-separated paths relative to the root. ``put`` is atomic: a reader sees the old object
or the new one, never a partial write. This is the only channel from trainer to controller.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger("kubohb.store")


class StoreError(RuntimeError):
    """A store operation failed; the message names the URL and the cause."""


class NotFound(StoreError):  # noqa: N818  (public API name)
    """The object does not exist."""


class Store(ABC):
    root: str

    def url(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key.lstrip('/')}"

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises NotFound."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write atomically, replacing any existing object."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under the folder ``prefix`` (recursively, relative to the root), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it is absent."""

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_temp(path: Path) -> bool:
    """A write in progress by ``atomic_write`` (never listed)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


class FileStore(Store):
    """A directory on a local or shared file system."""

    def __init__(self, root_dir: str | Path) -> None:
        self.dir = Path(root_dir).resolve()
        self.root = self.dir.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.dir / check_key(key, self.url(key))).resolve()
        if path != self.dir and self.dir not in path.parents:
            raise StoreError(f"{self.url(key)}: key escapes the store root")
        return path

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{self.url(key)}: no such object") from None
        except OSError as exc:
            raise StoreError(f"{self.url(key)}: {exc.strerror or exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as exc:
            raise StoreError(f"{self.url(key)}: cannot write ({exc.strerror or exc})") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        return list(self.list_sizes(prefix))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)
        if not base.is_dir():
            return {}
        sizes = {
            p.relative_to(self.dir).as_posix(): p.stat().st_size
            for p in base.rglob("*")
            if p.is_file() and not _is_temp(p)
        }
        return dict(sorted(sizes.items()))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def open_url(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> tuple[Store, str]:
    """The store holding one object's URL, and the object's key in it (its last path part)."""
    parent, _, name = url.rstrip("/").rpartition("/")
    if not name:
        raise StoreError(f"{url}: not an object URL")
    return open_store(parent, endpoint_url=endpoint_url, region=region), name


def open_store(url: str, *, endpoint_url: str | None = None, region: str | None = None) -> Store:
    """A store for ``file:///dir``, a plain path, or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return FileStore(unquote(parsed.path) if parsed.scheme else url)
    if parsed.scheme == "s3":
        from trainer.store_s3 import S3Store  # boto3 is imported only when needed

        return S3Store(url, endpoint_url=endpoint_url, region=region)
    raise StoreError(
        f"{url}: unsupported store URL scheme {parsed.scheme!r} (use file:// or s3://)"
    )
