"""The store on a directory of a local or shared file system (``file:///dir`` or a plain path)."""

from __future__ import annotations

import builtins
import os
import tempfile
from pathlib import Path

from trainer.store.base import (
    AlreadyExists,
    NotFound,
    Store,
    StoreError,
    TooLarge,
    atomic_copy,
    atomic_write,
    check_key,
)


def _is_temp(path: Path) -> bool:
    """A write in progress by ``atomic_write`` (never listed)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


class FileStore(Store):
    """A directory on a local or shared file system."""

    def __init__(self, root_dir: str | Path) -> None:
        self.dir = Path(root_dir).resolve()
        self.root = self.dir.as_uri()

    def _path(self, key: str) -> Path:
        # check_key refuses '.' and '..' parts, so joining the parts cannot leave the root; no
        # Path.resolve (a syscall per part: a quarter of the controller's CPU at 1,000 trials).
        parts = [part for part in check_key(key, self.url(key)).split("/") if part]
        return self.dir.joinpath(*parts)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{self.url(key)}: no such object") from None
        except OSError as exc:
            raise StoreError(f"{self.url(key)}: {exc.strerror or exc}") from exc

    def get_limited(self, key: str, max_bytes: int) -> bytes:
        try:
            with self._path(key).open("rb") as f:
                data = f.read(max_bytes + 1)  # never the whole of a huge file
                if len(data) > max_bytes:
                    size = os.fstat(f.fileno()).st_size
                    raise TooLarge(self.url(key), size, max_bytes)
                return data
        except FileNotFoundError:
            raise NotFound(f"{self.url(key)}: no such object") from None
        except OSError as exc:
            raise StoreError(f"{self.url(key)}: {exc.strerror or exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as exc:
            raise StoreError(f"{self.url(key)}: cannot write ({exc.strerror or exc})") from exc

    def put_file(self, path: str | Path, key: str) -> None:
        try:
            atomic_copy(Path(path), self._path(key))
        except OSError as exc:
            raise StoreError(f"{self.url(key)}: cannot write ({exc.strerror or exc})") from exc

    def put_new(self, key: str, data: bytes) -> None:
        """Written whole to a temporary file, then hard-linked to its name: link(2) fails if the
        name exists, so creation is atomic and exclusive (also on NFS, unlike O_EXCL on old
        clients)."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.link(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except FileExistsError:
            raise AlreadyExists(f"{self.url(key)}: already exists") from None
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

    def list_after(self, prefix: str, start_after: str) -> builtins.list[str]:
        """One folder's files only (not recursive), by name: what a journal's tail needs."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        rel = base.relative_to(self.dir).as_posix()
        keys = (
            f"{rel}/{entry.name}" if rel != "." else entry.name
            for entry in os.scandir(base)
            if entry.is_file() and not _is_temp(Path(entry.name))
        )
        return sorted(k for k in keys if k > start_after)
