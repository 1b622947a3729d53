"""S3 failure modes, each against a real server over HTTP: errors name the URL and the cause."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.servers import S3Endpoint, free_port, use_endpoint
from tests.store.faults import FaultProxy, Faults, fault_proxy
from trainer.store import AlreadyExists, StoreError, open_store
from trainer.store.s3 import S3Options, S3Store

FAST = S3Options(max_attempts=3, connect_timeout_s=1, read_timeout_s=10, outage_tolerance_s=1)


@pytest.fixture(params=["s3_server", "seaweedfs_server"], ids=["moto", "seaweedfs"])
def endpoint(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    server: S3Endpoint = request.getfixturevalue(request.param)
    use_endpoint(monkeypatch, server)
    return server


def _store(endpoint_url: str, url: str, options: S3Options = FAST) -> S3Store:
    return S3Store(url, endpoint_url=endpoint_url, region="us-east-1", options=options)


def test_missing_bucket_is_named_with_what_to_do(endpoint: S3Endpoint) -> None:
    store = _store(endpoint.endpoint_url, "s3://kubohb-no-such-bucket/root")
    expected = "bucket kubohb-no-such-bucket does not exist: create it or fix store.url"
    for op in (
        lambda: store.get("a"),
        lambda: store.put("a", b"x"),
        lambda: store.exists("a"),
        lambda: store.list(""),
    ):
        with pytest.raises(StoreError) as info:
            op()
        assert expected in str(info.value)
        assert "s3://kubohb-no-such-bucket/root/" in str(info.value)


def test_wrong_secret_is_rejected_by_sigv4(
    seaweedfs_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = seaweedfs_server.new_bucket()
    wrong = "not-the-secret-" + "x" * 20
    use_endpoint(monkeypatch, seaweedfs_server)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = _store(seaweedfs_server.endpoint_url, f"s3://{bucket}/root")
    with caplog.at_level(logging.DEBUG, logger="kubohb.store"), pytest.raises(StoreError) as info:
        store.put("k", b"x")
    message = str(info.value)
    assert f"s3://{bucket}/root/k" in message
    assert "access denied (SignatureDoesNotMatch)" in message
    assert "AWS_SECRET_ACCESS_KEY" in message  # says what to fix ...
    assert wrong not in message and wrong not in caplog.text  # ... never the secret itself


def test_unknown_access_key_is_rejected(
    seaweedfs_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = seaweedfs_server.new_bucket()
    use_endpoint(monkeypatch, seaweedfs_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY0000000000")
    store = _store(seaweedfs_server.endpoint_url, f"s3://{bucket}/root")
    with pytest.raises(StoreError, match=r"access denied \(InvalidAccessKeyId\)") as info:
        store.get("k")
    assert f"s3://{bucket}/root/k" in str(info.value)


def test_missing_credentials_say_which_variables(
    s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _store(s3_server.endpoint_url, "s3://any-bucket/root")
    with pytest.raises(StoreError, match="no S3 credentials") as info:
        store.get("k")
    assert "s3://any-bucket/root/k" in str(info.value)
    assert "AWS_ACCESS_KEY_ID" in str(info.value)


def test_endpoint_down_fails_after_bounded_retries(s3_server: S3Endpoint, monkeypatch) -> None:
    use_endpoint(monkeypatch, s3_server)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = _store(dead, "s3://bucket-x/root")
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.get("k")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert f"S3 endpoint {dead} unreachable" in message
    assert "s3://bucket-x/root/k" in message
    # outage_tolerance_s=1 plus botocore's own short backoffs: seconds, not a hang.
    assert elapsed < 15, elapsed


def test_endpoint_coming_up_late_is_waited_for(s3_server: S3Endpoint, monkeypatch) -> None:
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    port = free_port()
    proxies: list[FaultProxy] = []
    # The endpoint is down for a second (a MinIO pod restarting), then answers.
    timer = threading.Timer(
        1.0, lambda: proxies.append(FaultProxy(s3_server.endpoint_url, 0, port=port).start())
    )
    timer.start()
    try:
        options = FAST.model_copy(update={"outage_tolerance_s": 20.0})
        store = _store(f"http://127.0.0.1:{port}", f"s3://{bucket}/root", options)
        store.put("k", b"after the outage")
        assert store.get("k") == b"after the outage"
    finally:
        timer.join()
        for proxy in proxies:
            proxy.stop()


def test_transient_5xx_is_retried(s3_server: S3Endpoint, monkeypatch) -> None:
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    with fault_proxy(s3_server.endpoint_url, fail_first=2, status=503) as proxy:
        store = _store(proxy.endpoint_url, f"s3://{bucket}/root")
        store.put("k", b"despite two 503s")
        assert proxy.failed == 2
        assert proxy.requests == 3
    body = s3_server.client().get_object(Bucket=bucket, Key="root/k")["Body"].read()
    assert body == b"despite two 503s"


def test_persistent_5xx_gives_up_after_the_outage_tolerance(
    s3_server: S3Endpoint, monkeypatch
) -> None:
    use_endpoint(monkeypatch, s3_server)
    with fault_proxy(s3_server.endpoint_url, fail_first=1000, status=500) as proxy:
        store = _store(proxy.endpoint_url, "s3://some-bucket/root")
        with pytest.raises(StoreError) as info:
            store.get("k")
        message = str(info.value)
        assert "s3://some-bucket/root/k: GetObject failed for" in message
        assert "store.outage_tolerance_s = 1 s" in message
        assert "InternalError injected" in message  # the server's own last word
        # botocore's attempts per request, at least twice: the wait came on top of them
        assert proxy.requests % FAST.max_attempts == 0
        assert proxy.requests >= 2 * FAST.max_attempts


def test_an_outage_longer_than_botocore_retries_is_waited_out_with_warnings(
    s3_server: S3Endpoint, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    options = FAST.model_copy(update={"outage_tolerance_s": 60.0})
    with fault_proxy(s3_server.endpoint_url, fail_first=4 * FAST.max_attempts) as proxy:
        store = _store(proxy.endpoint_url, f"s3://{bucket}/root", options)
        with caplog.at_level(logging.WARNING, logger="kubohb.store"):
            store.put("k", b"after 12 503s")
        assert proxy.requests == 4 * FAST.max_attempts + 1
    warnings = [r.getMessage() for r in caplog.records if "event=store.outage" in r.getMessage()]
    assert len(warnings) == 4, warnings
    assert all("op=PutObject" in w and "tolerance_s=60" in w for w in warnings)
    assert "SlowDown injected" in warnings[0]
    assert store.get("k") == b"after 12 503s"


def test_a_total_outage_is_waited_out(s3_server: S3Endpoint, monkeypatch) -> None:
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    options = FAST.model_copy(update={"outage_tolerance_s": 60.0})
    with fault_proxy(s3_server.endpoint_url) as proxy:
        store = _store(proxy.endpoint_url, f"s3://{bucket}/root", options)
        store.put("before", b"1")
        with proxy.outage():
            timer = threading.Timer(3.0, lambda: setattr(proxy, "down", False))
            timer.start()
            store.put("during", b"2")  # every connection reset for 3 s, then served
            timer.join()
        assert proxy.counts.refused_down >= 1
    assert s3_server.client().get_object(Bucket=bucket, Key="root/during")["Body"].read() == b"2"


def test_put_new_whose_answer_was_lost_is_not_taken_for_a_rival(
    s3_server: S3Endpoint, monkeypatch
) -> None:
    """The server created the object but the client never heard so: its retry finds the object,
    with its own bytes, and succeeds; a rival's bytes still lose."""
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    with fault_proxy(s3_server.endpoint_url, faults=Faults(lose_first=1)) as proxy:
        store = _store(proxy.endpoint_url, f"s3://{bucket}/root")
        store.put_new("j/1", b"mine")
        assert proxy.counts.lost_answers == 1
        with pytest.raises(AlreadyExists):
            store.put_new("j/1", b"a rival's")
    assert store.get("j/1") == b"mine"


def test_denied_is_not_waited_for(seaweedfs_server: S3Endpoint, monkeypatch) -> None:
    """Waiting cannot fix a wrong secret: fail at once, even with a long tolerance."""
    bucket = seaweedfs_server.new_bucket()
    use_endpoint(monkeypatch, seaweedfs_server)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + "y" * 20)
    options = FAST.model_copy(update={"outage_tolerance_s": 300.0})
    store = _store(seaweedfs_server.endpoint_url, f"s3://{bucket}/root", options)
    started = time.monotonic()
    with pytest.raises(StoreError, match="access denied"):
        store.get("k")
    assert time.monotonic() - started < 30


def test_large_put_file_uses_multipart_and_round_trips(
    s3_server: S3Endpoint, monkeypatch, tmp_path: Path
) -> None:
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    options = FAST.model_copy(update={"multipart_threshold_mb": 5})
    store = _store(s3_server.endpoint_url, f"s3://{bucket}", options)
    src = tmp_path / "ckpt.pt"
    src.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB
    store.put_file(src, "ckpt.pt")
    head = s3_server.client().head_object(Bucket=bucket, Key="ckpt.pt")  # no prefix: bucket root
    assert "-" in head["ETag"]  # multipart ETags are "<md5>-<parts>"
    store.get_file("ckpt.pt", tmp_path / "back.pt")
    assert (tmp_path / "back.pt").read_bytes() == src.read_bytes()


def test_bad_urls_and_options_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match="not an S3 URL"):
        open_store("s3:///no-bucket")
    with pytest.raises(StoreError, match="unsupported store URL scheme 'gs'"):
        open_store("gs://bucket/x")
    monkeypatch.setenv("KUBOHB_STORE_MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError, match="max_attempts"):
        S3Options.from_env()


def test_list_follows_pagination(s3_server: S3Endpoint, monkeypatch) -> None:
    use_endpoint(monkeypatch, s3_server)
    bucket = s3_server.new_bucket()
    keys = [f"sw/trials/t{i:02d}/result.json" for i in range(7)]
    with fault_proxy(s3_server.endpoint_url, fail_first=0) as proxy:
        options = FAST.model_copy(update={"list_page_size": 2})
        store = _store(proxy.endpoint_url, f"s3://{bucket}/root", options)
        for key in keys:
            store.put(key, b"{}")
        before = proxy.requests
        assert store.list("sw/trials") == keys
        assert proxy.requests - before == 4  # 7 keys, 2 per page
        assert store.list_sizes("sw") == dict.fromkeys(keys, 2)
