"""SIGKILL the controller at random moments while its trials run, restart it each time, and get
the sweep an uninterrupted run gets: the same trials with the same losses, every trainer run
once (the local backend's trials outlive the controller and are adopted by the next one).

The write-protocol kill test (tests/controller/test_resume.py) stops the controller after its
k-th write; these kills land on the clock instead, so they also hit launches in flight, polls,
adoption and start-up. `make test` lands 8; `make chaos` (KUBOHB_CHAOS=1) at least 50.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sweeps import (
    REPO,
    CalmSweep,
    invocations,
    read_state,
    synthetic_sweep,
    write_sweep,
)

pytestmark = pytest.mark.slow

LONG = os.environ.get("KUBOHB_CHAOS") == "1"
MIN_KILLS_WHILE_RUNNING = 50 if LONG else 8
# Enough trials that the kills land before the sweep ends (a controller's life moves it on by
# about one trial): 60 trials (9 iterations) of 2 s, or 17 of 1 s.
ITERATIONS = 9 if LONG else 2
TRIAL_S = 2.0 if LONG else 1.0
MAX_KILLS = 400  # a sweep that makes no progress under kills fails here, not by hanging


def _trials_running(run_dir: Path) -> int:
    """Live wrappers of this sweep's trials: processes whose command line names its run folder."""
    marker = str(run_dir).encode()
    live = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        live += b"controller.backends.local.wrap" in cmdline and marker in cmdline
    return live


def _losses(state: dict) -> dict[str, tuple[str, float, float | None]]:
    return {
        tid: (json.dumps(t["config"], sort_keys=True), t["budget"], t["loss"])
        for tid, t in state["trials"].items()
    }


def test_sigkills_while_trials_run_lose_nothing_and_run_nothing_twice(
    tmp_path: Path, calm_sweep: CalmSweep
) -> None:
    env = {**os.environ, "KUBOHB_SYNTHETIC_SLEEP": str(TRIAL_S)}
    # parallelism 1 fixes the order of results, so the sweep is determined by its seed alone
    over: dict[str, Any] = {"stop": {"max_iterations": ITERATIONS}, "parallelism": 1}
    # the uninterrupted run (shared with test_resume: tests/sweeps.py); its trials do not sleep,
    # which changes no loss
    expected = _losses(calm_sweep(**over).state)

    rough = tmp_path / "rough"
    rough.mkdir()
    sweep = write_sweep(rough, synthetic_sweep(rough, **over))
    inv = rough / "invocations.txt"
    env["KUBOHB_SYNTHETIC_INVOCATIONS"] = str(inv)
    rng = random.Random(0)  # fixed: a failing sequence of kill times replays
    kills = kills_while_running = 0
    final: subprocess.CompletedProcess[str] | None = None
    while kills < MAX_KILLS:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", str(sweep), "--json"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if kills_while_running < MIN_KILLS_WHILE_RUNNING:
            try:
                out, err = proc.communicate(timeout=rng.uniform(0.8, 2.5))
            except subprocess.TimeoutExpired:
                running = _trials_running(rough / "local")
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
                kills_while_running += running > 0
                continue
        else:
            out, err = proc.communicate(timeout=240)
        final = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if kills_while_running >= MIN_KILLS_WHILE_RUNNING:
            break
        pytest.fail(f"the sweep finished after only {kills_while_running} kills while running")
    assert final is not None and final.returncode == 0, final and final.stderr[-3000:]
    assert kills_while_running >= MIN_KILLS_WHILE_RUNNING
    state = read_state(rough / "store", "syn")
    assert {t["state"] for t in state["trials"].values()} == {"SUCCEEDED"}
    assert _losses(state) == expected  # nothing lost, nothing different
    assert set(invocations(inv).values()) == {1}  # and no trainer ran twice
