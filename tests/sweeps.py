"""Whole-sweep test helpers: sweep files for the synthetic objective, the CLI in a fresh process,
and ``calm_sweep`` (session): the uninterrupted run a fault test compares its sweep with.

Used by the controller's tests, the chaos tests, and by the report's test of a real controller
sweep; ``calm_sweep`` is registered for every test by ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SPACE = [
    {"name": "x", "type": "float", "low": -3.0, "high": 3.0},
    {"name": "y", "type": "float", "low": -3.0, "high": 3.0},
    {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
]


def synthetic_sweep(tmp: Path, name: str = "syn", **over: Any) -> dict[str, Any]:
    """A sweep on the synthetic objective: budgets 1, 3, 9 (seconds), 2 brackets = 17 trials.

    A dict given for a key that holds a dict is merged into it (one level); others replace it.
    """
    spec: dict[str, Any] = {
        "name": name,
        "space": {"parameters": SPACE},
        "budget": {"unit": "seconds", "min": 1, "max": 9, "eta": 3},
        "bohb": {"seed": 7},
        "stop": {"max_iterations": 2},
        "parallelism": 2,
        "poll_interval_s": 0.05,
        "trainer": {
            "command": ["python", "-m", "trainer.synthetic"],
            "dataset": "synthetic",
            "env": {"KUBOHB_MAX_BUDGET": "9"},
        },
        "trials": {"startup_allowance_s": 30},
        "store": {"url": str(tmp / "store")},
        "backend": {"type": "local", "local": {"run_dir": str(tmp / "local"), "cancel_grace_s": 1}},
    }
    return merged(spec, over)


def merged(spec: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with ``over``: a dict given for a key that holds a dict is merged into it (one
    level); other values replace."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def write_sweep(tmp: Path, spec: dict[str, Any], file: str = "sweep.yaml") -> Path:
    path = tmp / file
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def kubohb(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process (as a user would), from the repository root."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_run(
    sweep: Path,
    writes: int,
    env: dict[str, str] | None = None,
    timeout: float = 240,
    compact_bytes: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kubohb run SWEEP --json`` in a fresh process that SIGKILLs itself after ``writes`` store
    writes (tests/controller/kill_run.py); ``compact_bytes``: compact the journal that often."""
    extra = [] if compact_bytes is None else [str(compact_bytes)]
    return subprocess.run(
        [sys.executable, "-m", "tests.controller.kill_run", str(sweep), str(writes), *extra],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_json(sweep: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = kubohb("run", str(sweep), "--json", env=env)
    assert proc.stdout.strip(), f"no JSON summary; stderr:\n{proc.stderr[-3000:]}"
    for line in proc.stderr.splitlines():  # structured logs: one JSON event per line
        assert "event" in json.loads(line), line
    return proc.returncode, json.loads(proc.stdout)


def read_state(store_dir: Path, sweep: str) -> dict[str, Any]:
    """The sweep's state as the controller left it in a file store: the snapshot rolled forward
    through the journal (state.json alone is behind between compactions), as JSON."""
    from controller.sweep.journal import load_state
    from trainer.store import FileStore

    state = load_state(FileStore(store_dir), sweep)
    assert state is not None, f"no state of sweep {sweep} in {store_dir}"
    return dict(json.loads(state.model_dump_json()))


def invocations(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            trial = line.split()[0]
            counts[trial] = counts.get(trial, 0) + 1
    return counts


@dataclass(frozen=True)
class CalmRun:
    """A synthetic sweep run to its end without faults: sweep ``syn`` in the file store
    ``store_dir``, and its final state (``read_state``)."""

    store_dir: Path
    state: dict[str, Any]


CalmSweep = Callable[..., CalmRun]


@pytest.fixture(scope="session")
def calm_sweep(tmp_path_factory: pytest.TempPathFactory) -> CalmSweep:
    """``calm_sweep(**over)``: ``synthetic_sweep(tmp, **over)`` run once per session through
    ``kubohb run`` (a fresh process, the local backend, a file store, no trainer sleep), to
    compare a faulted run of the same search with. With parallelism 1 the trials, their configs
    and losses are determined by the seed alone: neither the store, the sweep's name, the poll
    interval, nor how long trials take changes them, so one run serves every fault test that
    asks for the same search (the kill tests and the store-outage test)."""
    runs: dict[str, CalmRun] = {}

    def run(**over: Any) -> CalmRun:
        # the key: the sweep as written, with this fixture's paths (the same for every call)
        key = json.dumps(synthetic_sweep(Path("/calm"), **over), sort_keys=True)
        if key not in runs:
            folder = tmp_path_factory.mktemp("calm")
            code, summary = run_json(write_sweep(folder, synthetic_sweep(folder, **over)))
            assert code == 0, summary
            runs[key] = CalmRun(folder / "store", read_state(folder / "store", "syn"))
        return runs[key]

    return run
