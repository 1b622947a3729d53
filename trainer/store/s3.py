"""The store on any S3-compatible server (AWS, MinIO, SeaweedFS, moto), through boto3.

Imported only for ``s3://`` URLs, so file-only users never load boto3. Credentials come from boto3's
usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance/pod identity) and are
never logged.

Retries, in two layers. botocore's "standard" mode retries 5xx, throttling, timeouts and connection
errors a few times per request (seconds). A longer outage (a MinIO pod restarting, a regional
blip, a proxy answering 503 for a minute) is then waited out here: the request is retried with
exponential backoff and jitter, a warning per wait, for at most ``S3Options.outage_tolerance_s``
counted from its first failure (the sweep's ``store.outage_tolerance_s``, handed to trainers in
KUBOHB_STORE_OUTAGE_TOLERANCE_S); after that the StoreError names the endpoint and the last error.
Errors that waiting cannot fix (access denied, no bucket, no credentials) fail at once.
"""

from __future__ import annotations

import builtins
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from pydantic import BaseModel, ConfigDict, Field

from trainer.store.base import (
    AlreadyExists,
    NotFound,
    Store,
    StoreError,
    TooLarge,
    check_key,
)

log = logging.getLogger("kubohb.store")
T = TypeVar("T")

ENV_ENDPOINT = "KUBOHB_STORE_ENDPOINT"
ENV_REGION = "KUBOHB_STORE_REGION"
ENV_MAX_ATTEMPTS = "KUBOHB_STORE_MAX_ATTEMPTS"
ENV_OUTAGE_TOLERANCE_S = "KUBOHB_STORE_OUTAGE_TOLERANCE_S"

_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)
# Failures that end when the outage does: the connection, a timeout, or a body cut off mid-read.
_TRANSIENT: tuple[type[Exception], ...] = (
    *_UNREACHABLE,
    ReadTimeoutError,
    ResponseStreamingError,
)
# Error codes of a server that is up but cannot serve now (besides any 5xx status).
_BUSY = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
}
_MAX_WAIT_S = 15.0  # the longest single backoff: an outage's end is noticed within this
_DENIED = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "403", "Forbidden"}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


class _ConditionalError(StoreError):
    """A conditional PutObject was refused (the object exists, or a racing write holds it)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class S3Options(BaseModel):
    """Timeouts and retry bounds of one S3 store (env: KUBOHB_STORE_MAX_ATTEMPTS,
    KUBOHB_STORE_OUTAGE_TOLERANCE_S)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_attempts: int = Field(5, ge=1, le=20)  # per request, the first one included (botocore)
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    # how long one request waits out a failing endpoint, from its first failure
    outage_tolerance_s: float = Field(600.0, ge=0, le=366 * 86400)
    multipart_threshold_mb: int = Field(64, ge=5)  # put_file above this uses multipart upload
    list_page_size: int = Field(1000, ge=1, le=1000)  # keys per ListObjectsV2 page

    @classmethod
    def from_env(cls) -> S3Options:
        values: dict[str, Any] = {}
        if os.environ.get(ENV_MAX_ATTEMPTS):
            values["max_attempts"] = os.environ[ENV_MAX_ATTEMPTS]
        if os.environ.get(ENV_OUTAGE_TOLERANCE_S):
            values["outage_tolerance_s"] = os.environ[ENV_OUTAGE_TOLERANCE_S]
        return cls.model_validate(values)


def _describe(exc: Exception) -> str:
    """The error in one line: the S3 code and message of a ClientError, else the exception."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')} {error.get('Message', '')}".rstrip()
    return f"{type(exc).__name__}: {exc}"


def _env_endpoint() -> str | None:
    """KUBOHB_STORE_ENDPOINT, else boto3's own AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    for var in (ENV_ENDPOINT, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    return None


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at either end) of ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StoreError(f"{url}: not an S3 URL (expected s3://bucket/prefix)")
    return parsed.netloc, parsed.path.strip("/")


_LOADER_LOCK = threading.Lock()
_loader: Any = None


def _new_client(endpoint_url: str | None, region: str | None, config: Config) -> Any:
    """An S3 client from a fresh session (credentials are read now, from the env or a profile).

    The botocore data loader is shared: loading the S3 service model again for every store costs
    ~0.5 s, and ``open_url`` opens a store per object URL.
    """
    global _loader
    with _LOADER_LOCK:
        core = botocore.session.get_session()
        if _loader is None:
            _loader = core.get_component("data_loader")
        core.register_component("data_loader", _loader)
        return boto3.session.Session(botocore_session=core).client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )


class S3Store(Store):
    """Objects under ``s3://bucket/prefix``; ``put`` is one PutObject, hence atomic."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        options: S3Options | None = None,
    ) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.root = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.endpoint_url = endpoint_url or _env_endpoint()
        self.region = region or os.environ.get(ENV_REGION) or None
        self.options = options or S3Options.from_env()
        config = Config(
            retries={"mode": "standard", "total_max_attempts": self.options.max_attempts},
            connect_timeout=self.options.connect_timeout_s,
            read_timeout=self.options.read_timeout_s,
            signature_version="s3v4",
            # Custom endpoints (MinIO, SeaweedFS...) rarely have wildcard DNS for bucket hosts.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        self._client = _new_client(self.endpoint_url, self.region, config)
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"S3Store({self.root!r}, endpoint_url={self.endpoint_url!r})"

    # --- keys and errors ------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        key = check_key(key, self.url(key))
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run one S3 request, waiting out an outage, and translate its errors."""
        url = self.url(key)
        first_failure: float | None = None
        tries = 0
        while True:
            tries += 1
            try:
                return fn()
            except _TRANSIENT as exc:
                problem: Exception = exc
            except ClientError as exc:
                if not self._busy(exc):
                    raise self._client_error(what, url, exc) from exc
                problem = exc
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise StoreError(
                    f"{url}: no S3 credentials ({exc}): set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
                ) from exc
            except BotoCoreError as exc:
                raise StoreError(f"{url}: {what} failed ({exc})") from exc
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            waited = now - first_failure
            # full jitter: clients that failed together do not all come back at the same instant
            delay = random.uniform(0.5, 1.0) * min(_MAX_WAIT_S, 0.5 * 2 ** min(tries, 10))
            tolerance = self.options.outage_tolerance_s
            if waited + delay > tolerance:
                raise StoreError(self._outage_message(what, url, tries, waited, problem)) from None
            log.warning(
                "event=store.outage url=%s op=%s try=%d waited_s=%.0f tolerance_s=%g "
                "next_try_in_s=%.1f error=%s",
                url, what, tries, waited, tolerance, delay, _describe(problem),
            )  # fmt: skip
            time.sleep(delay)

    def _busy(self, exc: ClientError) -> bool:
        """A server that answers but cannot serve now: 5xx, throttling, request timeouts."""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in _BUSY or status >= 500 or status == 429

    def _outage_message(
        self, what: str, url: str, tries: int, waited: float, problem: Exception
    ) -> str:
        endpoint = self.endpoint_url or "AWS"
        tolerance = f"store.outage_tolerance_s = {self.options.outage_tolerance_s:g} s"
        if isinstance(problem, _UNREACHABLE):
            return (
                f"{url}: S3 endpoint {endpoint} unreachable for {waited:.0f} s, {tries} tries "
                f"({tolerance}; {problem}): check store.endpoint_url and that the server is running"
            )
        return (
            f"{url}: {what} failed for {waited:.0f} s, {tries} tries, on S3 endpoint {endpoint} "
            f"({tolerance}): {_describe(problem)}"
        )

    def _client_error(self, what: str, url: str, exc: ClientError) -> StoreError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return self._no_bucket(url)
        if code in _DENIED or status == 403:
            return StoreError(
                f"{url}: access denied ({code}) on {what}: check the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket's policy"
            )
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
            return _ConditionalError(code)
        if code in _MISSING_KEY or status == 404:
            # HEAD answers a bare 404 for a missing bucket too: tell the two apart once.
            if not self._bucket_exists(url):
                return self._no_bucket(url)
            return NotFound(f"{url}: no such object")
        return StoreError(f"{url}: {what} failed: {code} {error.get('Message', '')}".rstrip())

    def _no_bucket(self, url: str) -> StoreError:
        return StoreError(f"{url}: bucket {self.bucket} does not exist: create it or fix store.url")

    def _bucket_exists(self, url: str) -> bool:
        if self._bucket_checked:
            return True
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return False
            raise self._client_error("HeadBucket", url, exc) from exc
        except BotoCoreError:
            return True  # cannot tell: report the object as missing, as the server said
        self._bucket_checked = True
        return True

    # --- the Store API --------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        obj_key = self._key(key)

        def read() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=obj_key)["Body"]
            with body:
                return bytes(body.read())

        return self._call("GetObject", key, read)

    def get_limited(self, key: str, max_bytes: int) -> bytes:
        """One ranged GET of at most ``max_bytes`` + 1 bytes: a huge object is never read."""
        obj_key = self._key(key)

        def read() -> tuple[bytes, str]:
            reply = self._client.get_object(
                Bucket=self.bucket, Key=obj_key, Range=f"bytes=0-{max_bytes}"
            )
            with reply["Body"] as body:
                return bytes(body.read()), str(reply.get("ContentRange", ""))

        data, content_range = self._call("GetObject", key, read)
        if len(data) > max_bytes:
            total = content_range.rpartition("/")[2]  # "bytes 0-N/TOTAL"
            size = int(total) if total.isdigit() else None
            raise TooLarge(self.url(key), size, max_bytes)
        return data

    def put(self, key: str, data: bytes) -> None:
        obj_key = self._key(key)
        self._call(
            "PutObject",
            key,
            lambda: self._client.put_object(Bucket=self.bucket, Key=obj_key, Body=data),
        )

    def put_new(self, key: str, data: bytes) -> None:
        """PutObject with ``If-None-Match: *`` (AWS S3 since 2024, MinIO, moto...): 412 when the
        object exists, 409 when a concurrent conditional write to it is in flight."""
        obj_key = self._key(key)
        try:
            self._call(
                "PutObject",
                key,
                lambda: self._client.put_object(
                    Bucket=self.bucket, Key=obj_key, Body=data, IfNoneMatch="*"
                ),
            )
        except _ConditionalError as exc:
            # A retried request whose first try did land (its answer was lost in an outage) finds
            # its own object: that is success, not a rival writer.
            if exc.code != "ConditionalRequestConflict" and self._holds(key, data):
                return
            raise AlreadyExists(f"{self.url(key)}: already exists ({exc.code})") from None

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self.get(key) == data
        except NotFound:
            return False

    def exists(self, key: str) -> bool:
        obj_key = self._key(key)
        try:
            self._call(
                "HeadObject", key, lambda: self._client.head_object(Bucket=self.bucket, Key=obj_key)
            )
        except NotFound:
            return False
        return True

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._key(prefix).rstrip("/") if prefix.strip("/") else self.prefix
        s3_prefix = f"{base}/" if base else ""

        def scan() -> dict[str, int]:
            sizes: dict[str, int] = {}
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=s3_prefix,
                PaginationConfig={"PageSize": self.options.list_page_size},
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/"):  # "folder" marker objects
                        sizes[self._rel(obj["Key"])] = int(obj["Size"])
            return sizes

        return dict(sorted(self._call("ListObjectsV2", prefix, scan).items()))

    def list(self, prefix: str = "") -> list[str]:
        return list(self.list_sizes(prefix))

    def list_after(self, prefix: str, start_after: str) -> builtins.list[str]:
        base = self._key(prefix).rstrip("/") if prefix.strip("/") else self.prefix
        s3_prefix = f"{base}/" if base else ""
        start = self._key(start_after) if start_after else ""

        def scan() -> builtins.list[str]:
            keys: builtins.list[str] = []
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=s3_prefix,
                Delimiter="/",  # the folder's own objects, as FileStore.list_after
                StartAfter=start,
                PaginationConfig={"PageSize": self.options.list_page_size},
            )
            for page in pages:
                keys.extend(self._rel(o["Key"]) for o in page.get("Contents", []))
            return keys

        return [k for k in self._call("ListObjectsV2", prefix, scan) if not k.endswith("/")]

    def delete(self, key: str) -> None:
        obj_key = self._key(key)
        self._call(
            "DeleteObject",
            key,
            lambda: self._client.delete_object(Bucket=self.bucket, Key=obj_key),
        )

    def get_file(self, key: str, path: str | Path) -> None:
        """Stream to a temporary file beside ``path``, then rename (no partial file, low memory)."""
        obj_key = self._key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def download() -> None:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    body = self._client.get_object(Bucket=self.bucket, Key=obj_key)["Body"]
                    with body:
                        for chunk in body.iter_chunks(1 << 20):
                            f.write(chunk)
                Path(tmp).replace(path)
            finally:
                Path(tmp).unlink(missing_ok=True)

        self._call("GetObject", key, download)

    def put_file(self, path: str | Path, key: str) -> None:
        """Upload a local file; above the multipart threshold S3 still publishes it atomically."""
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig

        obj_key = self._key(key)
        path = Path(path)
        threshold = self.options.multipart_threshold_mb * 1024 * 1024
        if path.stat().st_size <= threshold:
            with path.open("rb") as f:

                def upload() -> None:
                    f.seek(0)  # a retried attempt must send the file from its start
                    self._client.put_object(Bucket=self.bucket, Key=obj_key, Body=f)

                self._call("PutObject", key, upload)
            return
        transfer = TransferConfig(multipart_threshold=threshold, multipart_chunksize=threshold)
        try:
            self._call(
                "UploadFile",
                key,
                lambda: self._client.upload_file(str(path), self.bucket, obj_key, Config=transfer),
            )
        except S3UploadFailedError as exc:
            raise StoreError(f"{self.url(key)}: multipart upload of {path} failed ({exc})") from exc
