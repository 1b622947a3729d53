"""The CI examples in docs/examples/ci run: each file is parsed, and its `kubohb` commands run
verbatim in bash, in order, as the CI system would run them (GitHub Actions: each `run:` step
with `bash -e`; GitLab: each `script:` line), against the API emulation with the chart's
namespace install, the fake kubelet running the controller and trial pods, and moto's S3 server
as the store. The environment stands in for the CI system's: its variables and secrets point at
the emulator and the test bucket, and sweeps/cifar.yaml is a tiny synthetic sweep."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.namespace import install_namespace, submitted_sweep, write_kubeconfig
from tests.k8s.objects import JOBS
from tests.servers import S3Endpoint
from tests.sweeps import REPO

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "docs" / "examples" / "ci"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def ci(tmp_path: Path, s3_server: S3Endpoint) -> Iterator[dict[str, str]]:
    """A prepared namespace on S3, the CI job's working directory and its environment."""
    bucket = s3_server.new_bucket()
    store = f"s3://{bucket}/kubohb"
    with RunningApiServer() as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        install_namespace(
            server,
            store,
            f"store.endpointUrl={s3_server.endpoint_url}",
            f"store.region={s3_server.region}",
            f"store.credentials.accessKeyId={s3_server.access_key}",
            f"store.credentials.secretAccessKey={s3_server.secret_key}",
        )
        (tmp_path / "sweeps").mkdir()
        (tmp_path / "sweeps" / "cifar.yaml").write_text(
            yaml.safe_dump(submitted_sweep("cifar", 11))
        )
        pods = {"AWS_EC2_METADATA_DISABLED": "true", "KUBECONFIG": str(kubeconfig)}
        with FakeKubelet(server.store, env=pods):
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
            yield {
                **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBOHB_"))},
                "PATH": path,  # `kubohb` as `pip install` puts it on PATH
                "PYTHONPATH": str(REPO),
                "NAMESPACE": NAMESPACE,
                "STORE": store,
                "KUBECONFIG": str(kubeconfig),
                **s3_server.env(),
                "HOME": str(tmp_path),
                "WORKDIR": str(tmp_path),
            }
        controllers = [
            j for j in server.store.list(JOBS, NAMESPACE)[0]
            if j["metadata"]["name"].endswith("-controller")
        ]  # fmt: skip
        assert len(controllers) == 1  # one sweep, submitted once
        assert controllers[0]["status"]["conditions"][-1]["type"] == "Complete"


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # shorten --wait's poll: a CI job waits 10 s between looks, this test cannot
    script = script.replace("--wait", "--wait --poll-interval 0.3")
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=env["WORKDIR"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _check_outputs(workdir: Path, summary: Path) -> None:
    text = summary.read_text()
    assert "| " in text and "cifar-" in text, text  # the Markdown summary, with its tables
    assert (workdir / "report" / "index.html").is_file()
    suite = ET.parse(workdir / "junit.xml").getroot()
    assert suite.tag in ("testsuite", "testsuites") and "fail-if-loss-above" in ET.tostring(
        suite, encoding="unicode"
    )


def test_the_github_actions_example_runs(ci: dict[str, str]) -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yaml").read_text())
    steps = [s for s in workflow["jobs"]["sweep"]["steps"] if s.get("run", "").startswith("kubohb")]
    assert len(steps) == 2  # submit --wait, then report with its gate
    summary = Path(ci["WORKDIR"]) / "step-summary.md"
    env = {**ci, "GITHUB_SHA": SHA, "GITHUB_STEP_SUMMARY": str(summary)}
    for step in steps:
        done = _bash(step["run"], env)
        assert done.returncode == 0, (step["name"], done.stdout[-3000:], done.stderr[-3000:])
    _check_outputs(Path(ci["WORKDIR"]), summary)


def test_the_gitlab_example_runs(ci: dict[str, str]) -> None:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yaml").read_text())
    job = pipeline["sweep"]
    assert job["artifacts"]["reports"]["junit"] == "junit.xml"
    env = {**ci, "CI_COMMIT_SHORT_SHA": SHA[:8]}
    for line in job["script"]:
        done = _bash(line, env)
        assert done.returncode == 0, (line, done.stdout[-3000:], done.stderr[-3000:])
    _check_outputs(Path(ci["WORKDIR"]), Path(ci["WORKDIR"]) / "summary.md")
