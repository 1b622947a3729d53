"""Both images built for real (tests/deploy/image_check.sh) and run the way the cluster runs them.

``image_check.sh build`` builds the controller and trainer targets without a registry (a
debootstrap stand-in for the digest-pinned base, the lock files' wheels from a host wheelhouse,
buildah). Then, inside the images, as uid 10001 with a read-only root file system:

- controller: ``kubohb --help``; no torch; the installed package's version is the image tag;
- trainer: a write to / fails and /tmp (the pod's emptyDir) takes one; ``python -m trainer
  --describe``; one real trial on the CPU, run from the very Job body the Kubernetes backend
  builds (command, env, emptyDir volumes, user and group, readOnlyRootFilesystem), against moto
  on 127.0.0.1, on Fashion-MNIST from the host's Debian package ``dataset-fashion-mnist`` mounted
  read-only (the trainer's synthetic set where that package is absent, with a warning), checked in
  the bucket: result.json ok, the checkpoint, metrics, log and inbox marker.

The build downloads from PyPI and the Debian mirror on a cold cache and takes minutes, so it runs
only under ``make image-check`` (KUBOHB_IMAGE_CHECK=1), not in ``make test``. Times and sizes
measured here: docs/kubernetes.md, "Checks in this repository".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.backends.base import Launch, Resources
from controller.backends.k8s.jobs import build_job
from controller.backends.k8s.options import KubernetesOptions
from tests.deploy.conftest import ROOT
from tests.servers import S3Endpoint, use_endpoint
from tests.trainer.helpers import TINY
from trainer.contract import (
    FILE_CHECKPOINT,
    FILE_LOG,
    FILE_METRICS,
    FILE_RESULT,
    FILE_TRIAL,
    TrialResult,
    inbox_key,
    trial_prefix,
)
from trainer.store import Store

pytestmark = [pytest.mark.slow]

SCRIPT = ROOT / "tests" / "deploy" / "image_check.sh"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
BUILD_TIMEOUT_S = 3600
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_FILES = [
    f"{part}-{kind}-ubyte" for part in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
]
DATA_IN_POD = "/data/fashion-mnist"


def _skip_reason() -> str | None:
    if os.environ.get("KUBOHB_IMAGE_CHECK") != "1":
        return "image builds take minutes and need PyPI + the Debian mirror: run `make image-check`"
    missing = [t for t in ("buildah", "debootstrap", "unshare", "setpriv") if not shutil.which(t)]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install buildah debootstrap)"
    if os.geteuid() != 0:
        return "debootstrap, the mounts and chroot need root"
    return None


def image(target: str) -> str:
    return f"localhost/kubohb-{target}:{VERSION}"


@pytest.fixture(scope="module")
def built() -> str:
    """Builds both images once for this module; returns the build's output."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(
        [str(SCRIPT), "build", "controller", "trainer"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, cwd=ROOT,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    for target in ("controller", "trainer"):
        assert f"image {image(target)}: " in output, output[-4000:]
    print(output)  # the sizes and times, shown with -s or on failure
    return output


def run_in(
    target: str,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    tmpfs: tuple[str, ...] = ("/tmp",),
    ro: dict[str, str] | None = None,
    user: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``command`` in the target's image, read-only root, as image_check.sh's ``run`` does."""
    args = [str(SCRIPT), "run", image(target)]
    if user:
        args += ["--user", user]
    for path in tmpfs:
        args += ["--tmpfs", path]
    for host, inside in (ro or {}).items():
        args += ["--ro", f"{host}:{inside}"]
    for name, value in (env or {}).items():
        args += ["--env", f"{name}={value}"]
    return subprocess.run(
        [*args, "--", *command],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT,
    )  # fmt: skip


def test_controller_image_runs_kubohb_as_10001_without_torch(built: str) -> None:
    proc = run_in("controller", ["kubohb", "--help"])
    assert proc.returncode == 0, proc.stderr
    usage = proc.stdout.splitlines()[0]
    assert usage.startswith("usage: kubohb"), proc.stdout
    assert all(command in usage for command in ("run", "validate", "status")), usage
    probe = run_in(
        "controller",
        ["python", "-c", "import os, importlib.metadata as m; print(os.getuid(), os.getgid(), "
         "m.version('kubohb'))"],
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["10001", "10001", VERSION]
    torch = run_in("controller", ["python", "-c", "import torch"])
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr


def test_trainer_root_file_system_is_read_only_and_tmp_is_writable(built: str) -> None:
    script = (
        "id -u; id -g; "
        "touch /tmp/probe && echo tmp-writable; "
        "touch /probe 2>&1; touch /opt/kubohb/probe 2>&1; touch /dev/shm/probe && echo shm-writable"
    )
    proc = run_in("trainer", ["sh", "-c", script])
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["10001", "10001", "tmp-writable"], proc.stdout + proc.stderr
    assert "touch: cannot touch '/probe': Read-only file system" in lines
    assert "touch: cannot touch '/opt/kubohb/probe': Read-only file system" in lines
    assert lines[-1] == "shm-writable"
    # not the permissions of uid 10001: as root, the root file system refuses writes as well
    as_root = run_in("trainer", ["sh", "-c", "id -u; touch /probe"], user="0:0")
    assert as_root.stdout.strip() == "0" and as_root.returncode != 0
    assert "Read-only file system" in as_root.stderr


def test_trainer_describe_and_its_cuda_torch(built: str) -> None:
    proc = run_in(
        "trainer",
        ["python", "-m", "trainer", "--describe", json.dumps(TINY), "--dataset", "fashion_mnist"],
    )
    assert proc.returncode == 0, proc.stderr
    described = json.loads(proc.stdout)
    assert described["params"] > 0 and described["config"]["initial_filters"] == 8
    torch = run_in(
        "trainer",
        ["python", "-c", "import torch, torchvision; print(torch.__version__, "
         "torch.version.cuda, torch.cuda.is_available(), torchvision.__version__)"],
    )  # fmt: skip
    assert torch.returncode == 0, torch.stderr
    version, cuda, available, vision = torch.stdout.split()
    assert version == "2.14.1+cu130" and cuda.startswith("13.") and vision == "0.29.1+cu130"
    assert available == "False"  # no GPU here: the trial below runs on the CPU


@pytest.fixture
def store(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    use_endpoint(monkeypatch, s3_server)
    yield s3_server.store(prefix="kubohb")


def _trial_spec(store: Store, dataset: str) -> dict[str, Any]:
    data: dict[str, Any] = {"subset": 512, "val_size": 256, "test_size": 256}
    if dataset == "fashion_mnist":
        data["location"] = DATA_IN_POD
    return {
        "sweep": "image-check",
        "trial_id": "t1",
        "config": dict(TINY),
        "budget": 1,
        "budget_unit": "epochs",
        "dataset": dataset,
        "data": data,
        "seed": 1,
        "store_root": store.root,
        "device": "auto",  # as a sweep leaves it: the CUDA build finds no GPU here
        "token": "image-check-token",
    }


def test_trainer_runs_one_trial_from_the_trial_job_against_s3(
    built: str, s3_server: S3Endpoint, store: Store
) -> None:
    real = all((FASHION / f"{name}.gz").is_file() for name in FASHION_FILES)
    dataset = "fashion_mnist" if real else "synthetic"
    if not real:
        warnings.warn(
            f"{FASHION} is absent (apt-get install dataset-fashion-mnist): the trial in the "
            "trainer image ran on the synthetic data set",
            stacklevel=1,
        )
    prefix = trial_prefix("image-check", "t1")
    store.put_json(f"{prefix}/{FILE_TRIAL}", _trial_spec(store, dataset))
    url = store.url(f"{prefix}/{FILE_TRIAL}")

    endpoint = {
        "KUBOHB_STORE_ENDPOINT": s3_server.endpoint_url,
        "KUBOHB_STORE_REGION": s3_server.region,
    }
    launch = Launch(sweep="image-check", trial_id="t1", trial_url=url, env=endpoint)
    job = build_job(
        launch=launch,
        options=KubernetesOptions(),
        image=image("trainer"),
        command=["python", "-m", "trainer"],
        resources=Resources(),
        env={"OMP_NUM_THREADS": "2"},
        namespace="sweeps",
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    tmpfs = tuple(m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs)
    assert tmpfs == ("/tmp",), container["volumeMounts"]
    env = {e["name"]: e["value"] for e in container["env"]}
    # what the store Secret gives the pod through envFrom
    env["AWS_ACCESS_KEY_ID"] = s3_server.access_key
    env["AWS_SECRET_ACCESS_KEY"] = s3_server.secret_key
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    security = pod["securityContext"]
    proc = run_in(
        "trainer",
        container["command"],
        env=env,
        tmpfs=tmpfs,
        ro={str(FASHION): DATA_IN_POD} if real else None,
        user=f"{security['runAsUser']}:{security['runAsGroup']}",
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    result = TrialResult.model_validate_json(store.get(f"{prefix}/{FILE_RESULT}"))
    assert result.status == "ok", result.error
    assert result.loss is not None and 0.0 <= result.loss <= 1.0
    assert result.token == "image-check-token"
    assert result.info.device == "cpu" and (result.info.params or 0) > 0
    assert result.info.epochs == pytest.approx(1.0)
    assert result.info.steps == 512 // TINY["batch_size"]
    assert len(store.get(f"{prefix}/{FILE_CHECKPOINT}")) > 0
    assert store.get(f"{prefix}/{FILE_METRICS}").strip()
    assert b'"event": "result"' in store.get(f"{prefix}/{FILE_LOG}")
    assert store.exists(inbox_key("image-check", "t1"))
