"""Helpers for the local backend's tests: a backend running a shell script as its trainer, one
trial launched, and waiting for its phase."""

from __future__ import annotations

import time
from pathlib import Path

from controller.backends.base import Launch, TrialState
from controller.backends.local.backend import LocalBackend
from trainer.store import FileStore


def sh_backend(tmp: Path, script: str, **kw: object) -> LocalBackend:
    """The backend appends `--trial URL`: they become $1 $2 of the script."""
    return LocalBackend(
        "sw",
        tmp / "local",
        ["sh", "-c", script, "sh"],
        store_root=FileStore(tmp / "store").root,
        gpus=kw.pop("gpus", []),  # type: ignore[arg-type]
        cancel_grace_s=1,
        **kw,  # type: ignore[arg-type]
    )


def launch(backend: LocalBackend, trial: str, deadline: float | None = None) -> None:
    backend.launch(
        Launch(sweep="sw", trial_id=trial, trial_url=f"file:///x/{trial}", deadline_s=deadline)
    )


def wait(backend: LocalBackend, trial: str, phase: str, timeout: float = 30) -> TrialState:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = backend.poll([trial])[trial]
        if state.phase == phase:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{trial} never reached {phase}: {backend.poll([trial])[trial]}")
