"""The store on a directory of a local or shared file system (``file:///dir`` or a plain path)."""

from __future__ import annotations

from pathlib import Path

from trainer.store.base import NotFound, Store, StoreError, atomic_write, check_key


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
