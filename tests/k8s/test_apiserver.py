"""The API server emulation itself, through the official client over HTTP: the behaviour the
backend relies on must be the real API server's, or the backend tests prove nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from tests.k8s.apiserver import RunningApiServer
from tests.k8s.objects import JOBS, PODS

NS = "ns1"


def body(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
            }
        },
    }


def watch(api: client.BatchV1Api, rv: str, timeout: int, **kw: Any) -> list[dict[str, Any]]:
    response = api.list_namespaced_job(
        NS,
        watch=True,
        resource_version=rv,
        timeout_seconds=timeout,
        _preload_content=False,
        **kw,
    )
    return [json.loads(line) for line in iter_resp_lines(response) if line.strip()]


def test_metadata_filling_conflict_selectors(apiserver: RunningApiServer) -> None:
    api = client.BatchV1Api(apiserver.api_client())
    created = json.loads(
        api.create_namespaced_job(NS, body("a", {"k": "1"}), _preload_content=False).data
    )
    meta = created["metadata"]
    assert meta["namespace"] == NS and meta["uid"] and meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) > 0
    with pytest.raises(ApiException) as conflict:
        api.create_namespaced_job(NS, body("a"))
    assert conflict.value.status == 409
    api.create_namespaced_job(NS, body("b", {"k": "2", "x": "y"}), _preload_content=False)
    api.create_namespaced_job("other", body("c", {"k": "1"}), _preload_content=False)

    def names(selector: str) -> list[str]:
        out = api.list_namespaced_job(NS, label_selector=selector, _preload_content=False)
        return [j["metadata"]["name"] for j in json.loads(out.data)["items"]]

    assert names("k=1") == ["a"]
    assert names("k!=1") == ["b"]
    assert names("k in (1,2)") == ["a", "b"]
    assert names("x") == ["b"] and names("!x") == ["a"]
    assert apiserver.store.creates[(JOBS, NS, "a")] == 1


def test_watch_from_resource_version_with_timeout_and_gone(apiserver: RunningApiServer) -> None:
    api = client.BatchV1Api(apiserver.api_client())
    first = json.loads(api.create_namespaced_job(NS, body("a"), _preload_content=False).data)
    rv = first["metadata"]["resourceVersion"]
    api.create_namespaced_job(NS, body("b"), _preload_content=False)
    started = time.monotonic()
    events = watch(api, rv, timeout=1, allow_watch_bookmarks=True)
    assert 0.9 < time.monotonic() - started < 5  # timeoutSeconds ends the stream
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", "b"),
        ("BOOKMARK", None),
    ]
    apiserver.store.compact()
    (error,) = watch(api, rv, timeout=1)
    assert error["type"] == "ERROR" and error["object"]["code"] == 410


def test_delete_propagation(apiserver: RunningApiServer) -> None:
    api = client.BatchV1Api(apiserver.api_client())
    for name in ("bg", "orphan"):
        job = json.loads(api.create_namespaced_job(NS, body(name), _preload_content=False).data)
        ref = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"]}
        apiserver.store.create(
            PODS, NS, {"metadata": {"name": f"{name}-pod", "ownerReferences": [ref]}}
        )
    api.delete_namespaced_job(
        "bg",
        NS,
        body=client.V1DeleteOptions(propagation_policy="Background"),
        _preload_content=False,
    )
    api.delete_namespaced_job(
        "orphan",
        NS,
        body=client.V1DeleteOptions(propagation_policy="Orphan"),
        _preload_content=False,
    )
    pods = {key[2] for key in apiserver.store.objects if key[0] == PODS}
    assert pods == {"orphan-pod"}
    assert [(k[2], p) for k, p in apiserver.store.deletes if k[0] == JOBS] == [
        ("bg", "Background"),
        ("orphan", "Orphan"),
    ]
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_job("bg", NS)
    assert missing.value.status == 404
