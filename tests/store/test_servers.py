"""The shared server fixtures themselves: each server answers signed requests on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.servers import S3Endpoint
from trainer.store import Store


@pytest.fixture(params=["s3_server", "seaweedfs_server"])
def endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    return request.getfixturevalue(request.param)


def test_endpoint_is_loopback_and_creates_unique_buckets(endpoint: S3Endpoint) -> None:
    assert urlparse(endpoint.endpoint_url).hostname == "127.0.0.1"
    first, second = endpoint.new_bucket(), endpoint.new_bucket()
    assert first != second
    names = {b["Name"] for b in endpoint.client().list_buckets()["Buckets"]}
    assert {first, second} <= names


def test_env_lets_a_subprocess_use_the_store(endpoint: S3Endpoint) -> None:
    bucket = endpoint.new_bucket()
    script = (
        "from trainer.store import open_store\n"
        f"s = open_store('s3://{bucket}/sub')\n"  # endpoint and region come from the env
        "s.put('k', b'from-child')\n"
    )
    env = {"PATH": "/usr/bin:/bin", **endpoint.env()}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    body = endpoint.client().get_object(Bucket=bucket, Key="sub/k")["Body"].read()
    assert body == b"from-child"


def test_store_fixtures_open_a_fresh_root(s3_store: Store, seaweedfs_store: Store) -> None:
    for store in (s3_store, seaweedfs_store):
        assert store.root.startswith("s3://") and store.root.endswith("/root")
        assert store.list("") == []
        store.put("a/b.txt", b"x")
        assert store.list("") == ["a/b.txt"]


def test_file_store_is_rooted_in_tmp_path(file_store: Store, tmp_path: Path) -> None:
    file_store.put("x/y", b"1")
    assert (tmp_path / "x" / "y").read_bytes() == b"1"
