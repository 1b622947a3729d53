"""The trainer as the pod runs it: ``python -m trainer --trial s3://...`` against real S3 servers
on 127.0.0.1 (moto: killed with SIGKILL mid-run and started again; SeaweedFS: real SigV4)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import S3Endpoint
from tests.trainer.helpers import write_trial
from trainer import checkpoint
from trainer.contract import (
    FILE_CHECKPOINT,
    FILE_LOG,
    FILE_METRICS,
    FILE_RESULT,
    FILE_TRIAL,
    ExitCode,
    MetricsLine,
    TrialResult,
)
from trainer.store import Store

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "s1/trials/t1"


def trainer_env(server: S3Endpoint, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, **server.env(), "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    env.pop("KUBOHB_TRIAL", None)
    return env


def start(url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", "--trial", url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_killed_trainer_resumes_from_its_checkpoint_and_finishes_the_budget(
    s3_server: S3Endpoint, s3_store: Store, tmp_path: Path
) -> None:
    epochs, steps_per_epoch = 4, 192 // 16
    url = write_trial(s3_store, budget=epochs, config={"batch_size": 16}, checkpoint_every_s=0.2)
    env = trainer_env(s3_server, tmp_path)
    proc = start(url, env)
    deadline = time.monotonic() + 180
    while not s3_store.exists(f"{PREFIX}/{FILE_CHECKPOINT}"):
        assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = checkpoint.load(s3_store, f"{PREFIX}/{FILE_CHECKPOINT}")
    assert state is not None
    killed_at = state["trainer"]["progress"]["step"]
    assert 0 < killed_at < epochs * steps_per_epoch
    assert not s3_store.exists(f"{PREFIX}/{FILE_RESULT}")

    # started again on the same trial (KUBOHB_TRIAL, as the Job does)
    again = subprocess.run(
        [sys.executable, "-m", "trainer"],
        cwd=ROOT,
        env={**env, "KUBOHB_TRIAL": url},
        capture_output=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr.decode()[-2000:]

    keys = {k.rsplit("/", 1)[1] for k in s3_store.list(PREFIX)}
    assert {FILE_TRIAL, FILE_METRICS, FILE_CHECKPOINT, FILE_RESULT, FILE_LOG} <= keys
    result = TrialResult.model_validate_json(s3_store.get(f"{PREFIX}/{FILE_RESULT}"))
    assert result.status == "ok" and result.loss is not None and 0 <= result.loss <= 1
    assert result.info.resumed == 1
    assert result.info.steps == epochs * steps_per_epoch
    assert result.info.epochs == pytest.approx(epochs)
    lines = [
        MetricsLine.model_validate_json(line)
        for line in s3_store.get(f"{PREFIX}/{FILE_METRICS}").decode().splitlines()
    ]
    assert [m.epoch for m in lines] == [1.0, 2.0, 3.0, 4.0]
    assert all(a.seconds <= b.seconds for a, b in itertools.pairwise(lines))
    assert lines[-1].val_error == result.loss
    final = checkpoint.load(s3_store, f"{PREFIX}/{FILE_CHECKPOINT}")
    assert final is not None and final["trainer"]["progress"]["step"] == epochs * steps_per_epoch
    assert b'"event": "resumed"' in s3_store.get(f"{PREFIX}/{FILE_LOG}")


def test_cli_help_documents_the_url_and_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainer", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0
    for text in (
        "--trial",
        "KUBOHB_TRIAL",
        "--describe",
        f"{ExitCode.BAD_TRIAL}",
        f"{ExitCode.INFRA}",
    ):
        assert text in out.stdout


def test_a_trial_against_seaweedfs_with_real_sigv4_credentials(
    seaweedfs_server: S3Endpoint, seaweedfs_store: Store, tmp_path: Path
) -> None:
    url = write_trial(seaweedfs_store, budget=1)
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "--trial", url],
        cwd=ROOT,
        env=trainer_env(seaweedfs_server, tmp_path),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = TrialResult.model_validate_json(seaweedfs_store.get(f"{PREFIX}/{FILE_RESULT}"))
    assert result.status == "ok" and result.info.steps == 192 // 32
    assert seaweedfs_store.exists(f"{PREFIX}/{FILE_CHECKPOINT}")
    assert seaweedfs_store.exists(f"{PREFIX}/{FILE_METRICS}")
