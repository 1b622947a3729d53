"""The `helm test` script (helm/kubohb/files/helm-test.py, shipped in the ConfigMap): its store
check against a real S3 server on loopback with the chart's own Secret and sweep spec, and its RBAC
check against a loopback API server that authorizes SelfSubjectAccessReviews by the rendered Role.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from tests.deploy.conftest import CHART, NAMESPACE, Render, one
from tests.servers import S3Endpoint

Grants = set[tuple[str, str, str]]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("helm_test", CHART / "files" / "helm-test.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def role_grants(role: dict[str, Any]) -> Grants:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


class _Authorizer(BaseHTTPRequestHandler):
    """Answers SelfSubjectAccessReviews and job lists from a set of Role grants (namespace-scoped
    rules, no wildcards: all this chart's Role may contain)."""

    grants: ClassVar[Grants] = set()
    namespace = NAMESPACE

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _allowed(self, group: str, resource: str, verb: str, namespace: str) -> bool:
        return namespace == self.namespace and (group, resource, verb) in self.grants

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            self._send(404, {"kind": "Status", "code": 404})
            return
        attrs = review["spec"]["resourceAttributes"]
        resource = attrs["resource"] + (
            f"/{attrs['subresource']}" if attrs.get("subresource") else ""
        )
        allowed = self._allowed(attrs.get("group", ""), resource, attrs["verb"], attrs["namespace"])
        self._send(201, {**review, "status": {"allowed": allowed}})

    def do_GET(self) -> None:
        prefix = "/apis/batch/v1/namespaces/"
        namespace = self.path.removeprefix(prefix).split("/", 1)[0]
        if self.path.startswith(prefix) and self._allowed("batch", "jobs", "list", namespace):
            self._send(
                200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": []}
            )
        else:
            self._send(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})

    def log_message(self, format: str, *args: Any) -> None:  # quiet test server
        return


@pytest.fixture
def authorizer() -> Iterator[tuple[str, type[_Authorizer]]]:
    handler = type("Authorizer", (_Authorizer,), {"grants": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def api_client(host: str) -> Any:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = host
    return client.ApiClient(configuration)


def test_rbac_check_passes_with_the_rendered_role(
    render: Render, authorizer: tuple[str, type[_Authorizer]], capsys: pytest.CaptureFixture[str]
) -> None:
    host, handler = authorizer
    handler.grants = role_grants(one(render(), "Role"))
    assert load_script().check_rbac(NAMESPACE, api_client(host)) == []
    out = capsys.readouterr().out
    assert "ok rbac delete jobs: allowed" in out and "ok rbac get secrets: denied" in out


def test_rbac_check_names_a_missing_and_an_excess_permission(
    render: Render, authorizer: tuple[str, type[_Authorizer]]
) -> None:
    host, handler = authorizer
    grants = role_grants(one(render(), "Role"))
    handler.grants = (grants - {("batch", "jobs", "delete")}) | {("", "secrets", "get")}
    failures = load_script().check_rbac(NAMESPACE, api_client(host))
    assert failures == [
        f"rbac: delete jobs in {NAMESPACE} should be allowed",
        f"rbac: get secrets in {NAMESPACE} should be denied",
    ]


def test_rbac_check_reports_a_forbidden_job_list(
    render: Render, authorizer: tuple[str, type[_Authorizer]]
) -> None:
    host, handler = authorizer
    handler.grants = role_grants(one(render(), "Role")) - {("batch", "jobs", "list")}
    failures = load_script().check_rbac(NAMESPACE, api_client(host))
    assert f"rbac: list jobs in {NAMESPACE}: HTTP 403 Forbidden" in failures


def test_store_check_with_the_charts_secret_and_spec(
    render: Render,
    s3_server: S3Endpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    objects = render(
        "--set", f"store.url=s3://{bucket}/sweeps",
        "--set", f"store.endpointUrl={s3_server.endpoint_url}",
        "--set", f"store.region={s3_server.region}",
        "--set", f"store.credentials.accessKeyId={s3_server.access_key}",
        "--set", f"store.credentials.secretAccessKey={s3_server.secret_key}",
    )  # fmt: skip
    # What envFrom does in the pod: the rendered Secret's keys become the environment.
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for key, value in one(objects, "Secret")["stringData"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBOHB_POD_NAME", "demo-kubohb-test")
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(one(objects, "ConfigMap")["data"]["sweep.yaml"])

    assert load_script().check_store(str(spec_path)) == []
    assert "ok store read/write/delete" in capsys.readouterr().out
    listed = s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    assert listed == 0  # the probe object was deleted again


def test_store_check_reports_a_missing_bucket(
    render: Render, s3_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(
        "--set", "store.url=s3://no-such-bucket-kubohb/sweeps",
        "--set", f"store.endpointUrl={s3_server.endpoint_url}",
        "--set", "store.existingSecret=kubohb-store",
    )  # fmt: skip
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(one(objects, "ConfigMap")["data"]["sweep.yaml"])
    failures = load_script().check_store(str(spec_path))
    assert len(failures) == 1, failures
    assert failures[0].startswith("store s3://no-such-bucket-kubohb/sweeps/demo/.helm-test/")
