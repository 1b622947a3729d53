"""No process of a local trial outlives it: real trainers that leave a child in their group and a
double-forked ``setsid`` daemon behind, ended by a normal exit, the deadline, a cancel, and a
wrapper SIGKILL followed by a relaunch."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from controller.backends.base import ExitCode
from controller.backends.local.backend import LocalBackend
from controller.backends.local.wrap import process_start_time
from tests.controller.local_trials import launch, wait
from trainer.store import FileStore

# argv: PIDS MODE ENV [--trial URL]. Starts two sleepers that write their pids to PIDS: one left in
# the trainer's process group, one daemonised (fork, setsid, fork) into a session of its own, with
# the trainer's environment or (ENV=scrub) none at all. Then exits 0 (MODE=exit) or sleeps.
TRAINER = """
import os, subprocess, sys, time
pids, mode, scrub = sys.argv[1], sys.argv[2], sys.argv[3] == "scrub"
sleep = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\\\n'); time.sleep(60)"
sleeper = [sys.executable, "-S", "-c", sleep, pids]
subprocess.Popen(sleeper)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, sleeper, {} if scrub else dict(os.environ))
    os._exit(0)
os.wait()
while not os.path.exists(pids) or len(open(pids).read().split()) < 2:
    time.sleep(0.01)
if mode == "sleep":
    time.sleep(60)
"""


def _backend(tmp: Path, mode: str, env: str = "keep") -> LocalBackend:
    script = tmp / "trainer.py"
    script.write_text(TRAINER)
    return LocalBackend(
        "sw",
        tmp / "local",
        ["python", "-S", str(script), str(tmp / "pids"), mode, env],
        store_root=FileStore(tmp / "store").root,
        gpus=[],
        cancel_grace_s=1,
    )


def _sleepers(tmp: Path, timeout: float = 20) -> dict[int, int | None]:
    """The two sleepers' pids, once both run, with their start times."""
    path, end = tmp / "pids", time.monotonic() + timeout
    while time.monotonic() < end:
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        if len(pids) == 2:
            return {pid: process_start_time(pid) for pid in pids}
        time.sleep(0.02)
    raise AssertionError("the trainer never started its two sleepers")


def _with_marker(tmp: Path) -> list[str]:
    """Live processes of this test's trainer tree (the pid file's path is in each one's argv),
    the wrappers aside (their argv holds the trainer command, and they exit just after the
    exit file)."""
    wrappers = {json.loads((tmp / "local" / "sw" / "t" / "proc.json").read_text())["pid"]}
    marker = str(tmp / "pids").encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in wrappers:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline and process_start_time(int(proc.name)) is not None:
            argv = cmdline.replace(b"\0", b" ").decode()
            found.append(f"{proc.name}: {argv}")
    return found


def _running(procs: dict[int, int | None]) -> list[int]:
    """Those of ``procs`` (pid: start time) that still run."""
    return [pid for pid, start in procs.items() if start and process_start_time(pid) == start]


@pytest.mark.parametrize("env", ["keep", "scrub"])
def test_a_normal_exit_leaves_no_process(tmp_path: Path, env: str) -> None:
    # "scrub": the daemon has no KUBOHB_ATTEMPT_TOKEN; only the wrapper as subreaper finds it
    backend = _backend(tmp_path, "exit", env)
    launch(backend, "t")
    assert wait(backend, "t", "exited").exit_code == 0
    sleepers = _sleepers(tmp_path)
    assert _running(sleepers) == [], "a sleeper outlived its trial"
    assert _with_marker(tmp_path) == []
    log = (tmp_path / "local" / "sw" / "t" / "trainer.log").read_text()
    assert "stopped 2 process(es) the trainer left" in log


def test_the_deadline_stops_the_whole_tree(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep")
    launch(backend, "t", deadline=2)
    sleepers = _sleepers(tmp_path)
    assert all(start is not None for start in sleepers.values())
    assert wait(backend, "t", "exited").exit_code == ExitCode.DEADLINE
    assert _running(sleepers) == []
    assert _with_marker(tmp_path) == []


def test_a_cancel_stops_the_whole_tree(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep")
    launch(backend, "t")
    sleepers = _sleepers(tmp_path)
    assert len(_with_marker(tmp_path)) == 3  # the trainer and its two sleepers run
    backend.cancel("t")
    assert wait(backend, "t", "exited").exit_code == ExitCode.CANCELLED
    assert _running(sleepers) == []
    assert _with_marker(tmp_path) == []


def test_a_relaunch_kills_what_a_sigkilled_wrapper_left(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep")
    launch(backend, "t")
    folder = tmp_path / "local" / "sw" / "t"
    sleepers = _sleepers(tmp_path)
    # the wrapper records its trainer after starting it: the sleepers may already run by then
    end = time.monotonic() + 20
    while not (folder / "trainer.json").exists() and time.monotonic() < end:
        time.sleep(0.02)
    trainer = json.loads((folder / "trainer.json").read_text())["pid"]
    stale = {**sleepers, trainer: process_start_time(trainer)}
    os.kill(json.loads((folder / "proc.json").read_text())["pid"], signal.SIGKILL)
    assert wait(backend, "t", "lost").reason == "trial process gone without an exit code"
    # the daemon's parent was the wrapper: it is init's now, found only by its token
    assert sorted(_running(stale)) == sorted(stale), "the lost attempt's processes should still run"
    relaunched = LocalBackend(  # e.g. a restarted controller, with a trainer that just exits
        "sw",
        tmp_path / "local",
        [sys.executable, "-c", "pass"],
        store_root=FileStore(tmp_path / "store").root,
        gpus=[],
        cancel_grace_s=1,
    )
    launch(relaunched, "t")
    assert _running(stale) == [], "the lost attempt's processes survived the relaunch"
    assert wait(relaunched, "t", "exited").exit_code == 0
