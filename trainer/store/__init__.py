"""Object store under a root URL: ``file:///dir`` or ``s3://bucket/prefix`` (torch-free).

Keys are '/'-separated paths relative to the root. ``put`` is atomic: a reader sees the old object
or the new one, never a partial write. This is the only channel from trainer to controller.

``base`` is the interface, ``file`` and ``s3`` its two implementations (``s3`` is imported only for
``s3://`` URLs, so file-only users never load boto3), ``counting`` a delegating wrapper that counts
requests. Nothing here imports the rest of the project except this package.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from trainer.store.base import AlreadyExists, NotFound, Store, StoreError, TooLarge, check_key
from trainer.store.file import FileStore, atomic_write

# The controller hands its store.outage_tolerance_s to every trial in this variable.
ENV_OUTAGE_TOLERANCE_S = "KUBOHB_STORE_OUTAGE_TOLERANCE_S"

__all__ = [
    "ENV_OUTAGE_TOLERANCE_S",
    "AlreadyExists",
    "FileStore",
    "NotFound",
    "Store",
    "StoreError",
    "TooLarge",
    "atomic_write",
    "check_key",
    "open_store",
    "open_url",
]


def open_url(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> tuple[Store, str]:
    """The store holding one object's URL, and the object's key in it (its last path part)."""
    parent, _, name = url.rstrip("/").rpartition("/")
    if not name:
        raise StoreError(f"{url}: not an object URL")
    return open_store(parent, endpoint_url=endpoint_url, region=region), name


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    outage_tolerance_s: float | None = None,
) -> Store:
    """A store for ``file:///dir``, a plain path, or ``s3://bucket/prefix``.

    ``outage_tolerance_s``: how long an S3 store waits out a failing endpoint (default: the
    KUBOHB_STORE_OUTAGE_TOLERANCE_S variable, else ``S3Options``' default)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return FileStore(unquote(parsed.path) if parsed.scheme else url)
    if parsed.scheme == "s3":
        from trainer.store.s3 import S3Options, S3Store  # boto3 is imported only when needed

        options = S3Options.from_env()
        if outage_tolerance_s is not None:
            options = options.model_copy(update={"outage_tolerance_s": outage_tolerance_s})
        return S3Store(url, endpoint_url=endpoint_url, region=region, options=options)
    raise StoreError(
        f"{url}: unsupported store URL scheme {parsed.scheme!r} (use file:// or s3://)"
    )
