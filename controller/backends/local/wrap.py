"""``python -m controller.backends.local.wrap``: runs one trainer attempt for the local backend.

The wrapper is what makes a local trial survive and report across a controller restart: it is
started in its own session (a controller SIGKILL does not reach it), it enforces the attempt's
deadline, streams the trainer's output to a capped log that it puts to the store while the trial
runs (``logs``), stops every process of the trainer's tree when the attempt ends however it ends
(``tree``), and writes the exit code atomically to ``exit.json`` in the trial's run folder, so a
restarted controller learns how an adopted trial ended even though it is not that process's parent.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from controller.backends.base import Ending, ExitCode
from controller.backends.local import logs, tree
from controller.backends.local.logs import CappedLog, Uploader
from controller.log import event
from controller.log import setup as setup_logging
from trainer.store import Store, atomic_write, open_store

FILE_EXIT = "exit.json"
FILE_TRAINER = "trainer.json"  # trainer's pid, start time and token: a relaunch kills a stale one
FILE_LOCAL_LOG = "trainer.log"
DEFAULT_LOG_CAP = 8 << 20
_REAP_EVERY_S = 2.0
_DRAIN_S = 5.0  # to read the last output once the tree is gone (more: a stranger holds the pipe)

Search = Callable[[], set[int]]


def process_start_time(pid: int) -> int | None:
    """Start time of a live (non-zombie) process in clock ticks since boot, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped
        return None
    return int(fields[19])  # field 22 of proc(5), counted after "pid (comm)"


def write_exit(
    folder: Path,
    exit_code: int,
    ending: Ending,
    reason: str | None,
    attempt: int,
    started: datetime | None,
) -> None:
    """``started``: when the trainer process started (None: it never did); the attempt's running
    time is from there to now."""
    record = {
        "exit_code": int(exit_code),
        "ending": ending.value,
        "reason": reason,
        "attempt": attempt,
        "started_at": started.isoformat() if started else None,
        "ended_at": datetime.now(UTC).isoformat(),
    }
    atomic_write(folder / FILE_EXIT, json.dumps(record).encode())


@dataclass
class _Ended:
    code: int
    ending: Ending
    reason: str | None
    grace_s: float  # left for what remains of the tree
    signalled: set[int] = field(default_factory=set)  # already sent SIGTERM


def _terminate(child: subprocess.Popen[bytes], grace_s: float, search: Search) -> set[int]:
    """Deadline or cancel: SIGTERM the trainer's group and every other process of its tree (once
    each: a trainer may take a second SIGTERM as "quit now"), SIGKILL the trainer after the grace
    period. Returns the processes signalled; the rest of the tree is stopped after."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGTERM)
    signalled = search()
    tree.signal_all((p for p in signalled if _group(p) != child.pid), signal.SIGTERM)
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.kill()
        child.wait()
    return signalled


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _supervise(
    child: subprocess.Popen[bytes], args: argparse.Namespace, cancelled: Callable[[], bool]
) -> _Ended:
    """Wait for the trainer, stopping it at the deadline or on cancel."""
    # the deadline counts the trainer's running time, from its start
    deadline = time.monotonic() + args.deadline if args.deadline else None
    next_reap = time.monotonic() + _REAP_EVERY_S
    while True:
        try:
            return _Ended(child.wait(timeout=0.2), Ending.EXITED, None, args.grace)
        except subprocess.TimeoutExpired:
            pass
        ended: _Ended | None = None
        if cancelled():
            ended = _Ended(ExitCode.CANCELLED, Ending.CANCELLED, "cancelled", args.grace)
        elif deadline is not None and time.monotonic() > deadline:
            reason = f"deadline exceeded ({args.deadline:g} s)"
            ended = _Ended(ExitCode.DEADLINE, Ending.DEADLINE, reason, args.grace)
        if ended:
            begun = time.monotonic()
            ended.signalled = _terminate(child, args.grace, _search(args))
            ended.grace_s = max(0.0, args.grace - (time.monotonic() - begun))
            return ended
        if time.monotonic() > next_reap:  # orphans the trainer left, exited: no zombie piles up
            tree.reap(keep=child.pid)
            next_reap = time.monotonic() + _REAP_EVERY_S


def _search(args: argparse.Namespace) -> Search:
    """The attempt's processes: this wrapper's descendants (it is their subreaper) and any that
    carry its token (where it could not become one)."""
    return functools.partial(tree.find, [os.getpid()], [args.token])


def _store_upload(args: argparse.Namespace) -> Callable[[Path], None]:
    """Puts a file to the trial's log key; the store is opened on first use (and again after a
    failure), so an endpoint that is down at the start does not lose the log for good."""
    store: Store | None = None

    def upload(path: Path) -> None:
        nonlocal store
        if store is None:
            store = open_store(
                args.store_root,
                endpoint_url=os.environ.get("KUBOHB_STORE_ENDPOINT") or None,
                region=os.environ.get("KUBOHB_STORE_REGION") or None,
            )
        store.put_file(path, args.log_key)

    return upload


def _start(
    args: argparse.Namespace, log: CappedLog
) -> tuple[subprocess.Popen[bytes], threading.Thread] | str:
    """The trainer, in its own session and process group, its output on a pipe to ``log``; or
    why it cannot start (e.g. a misspelt trainer.command: say so, never just vanish)."""
    try:
        child = subprocess.Popen(
            args.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, tree.TOKEN_VAR: args.token},
        )
    except OSError as exc:
        return f"cannot start the trainer: {exc}"
    assert child.stdout is not None
    return child, logs.pump(child.stdout.fileno(), log)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    started = datetime.now(UTC)
    cancelled = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal cancelled
        cancelled = True

    signal.signal(signal.SIGTERM, on_term)
    args.token = args.token or secrets.token_hex(8)
    problem = tree.become_subreaper()
    if problem:
        event("trial.no_subreaper", logging.WARNING, dir=args.dir, problem=problem)
    log_path = folder / FILE_LOCAL_LOG
    log = CappedLog(args.log_cap)
    logs.seed(log, log_path)
    log.write(f"=== kubohb attempt {args.attempt} started {started.isoformat()}\n".encode())
    upload = _store_upload(args) if args.store_root and args.log_key else None
    uploader = Uploader(
        log, log_path, upload, args.log_upload_interval, f"{args.store_root}/{args.log_key}"
    )
    uploader.start()
    trainer_started: datetime | None = None
    code: int
    reason: str | None
    started_trainer = _start(args, log)
    if isinstance(started_trainer, str):
        code, ending, reason = ExitCode.CANNOT_START, Ending.CANNOT_START, started_trainer
        log.write(f"{reason}\n".encode())
    else:
        child, output = started_trainer
        trainer_started = datetime.now(UTC)
        record = {
            "pid": child.pid,
            "start_time": process_start_time(child.pid),
            "attempt": args.attempt,
            "started_at": trainer_started.isoformat(),
            "token": args.token,
        }
        atomic_write(folder / FILE_TRAINER, json.dumps(record).encode())
        ended = _supervise(child, args, lambda: cancelled)
        code, ending, reason = ended.code, ended.ending, ended.reason
        _stop_leftovers(args, log, ended)
        output.join(timeout=_DRAIN_S)  # every writer of the pipe is gone: it reads to the end
    log.write(f"=== kubohb attempt {args.attempt} ended: exit {code} {reason or ''}\n".encode())
    problem = uploader.finish()
    if problem:
        event("trial.log_upload_failed", logging.WARNING, dir=args.dir, error=problem)
    write_exit(folder, code, ending, reason, args.attempt, trainer_started)
    return 0


def _stop_leftovers(args: argparse.Namespace, log: CappedLog, ended: _Ended) -> None:
    """The trainer has ended: no process of its tree may outlive the attempt."""
    found, survivors = tree.stop(
        _search(args), ended.grace_s, reaper=tree.reap, signalled=ended.signalled
    )
    if found:
        log.write(f"=== kubohb: stopped {len(found)} process(es) the trainer left\n".encode())
    if survivors:
        event("trial.unkillable", logging.ERROR, dir=args.dir, pids=sorted(survivors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.backends.local.wrap")
    parser.add_argument("--dir", required=True, help="the trial's run folder")
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=None, help="seconds")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds from SIGTERM to SIGKILL")
    parser.add_argument("--store-root", default=None)
    parser.add_argument("--log-key", default=None)
    parser.add_argument("--log-cap", type=int, default=DEFAULT_LOG_CAP, help="bytes")
    parser.add_argument("--log-upload-interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--token", default=None, help=f"{tree.TOKEN_VAR} of the attempt")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no trainer command after --")
    setup_logging()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
