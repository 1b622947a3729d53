"""``python -m controller.backends.local.wrap``: runs one trainer attempt for the local backend.

The wrapper is what makes a local trial survive and report across a controller restart: it is
started in its own session (a controller SIGKILL does not reach it), it enforces the attempt's
deadline, uploads the trainer's log to the store, and writes the exit code atomically to
``exit.json`` in the trial's run folder, so a restarted controller learns how an adopted trial
ended even though it is not that process's parent.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from controller.backends.base import Ending, ExitCode
from trainer.store import StoreError, atomic_write, open_store

FILE_EXIT = "exit.json"
FILE_TRAINER = "trainer.json"  # the trainer's pid and start time: a relaunch kills a stale one
FILE_LOCAL_LOG = "trainer.log"


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


def _stop(child: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM the trainer's process group, then SIGKILL after the grace period."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        try:
            return child.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return child.wait()


def _upload_log(log_path: Path, store_root: str, key: str) -> str | None:
    try:
        store = open_store(
            store_root,
            endpoint_url=os.environ.get("KUBOHB_STORE_ENDPOINT") or None,
            region=os.environ.get("KUBOHB_STORE_REGION") or None,
        )
        store.put(key, log_path.read_bytes())
    except (StoreError, OSError) as exc:
        return f"log upload to {store_root}/{key} failed: {exc}"
    return None


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    started = datetime.now(UTC)
    cancelled = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal cancelled
        cancelled = True

    signal.signal(signal.SIGTERM, on_term)
    log_path = folder / FILE_LOCAL_LOG
    with log_path.open("ab") as log:
        log.write(f"=== kubohb attempt {args.attempt} started {started.isoformat()}\n".encode())
        log.flush()
        reason = None
        ending = Ending.EXITED
        code: int
        trainer_started: datetime | None = None
        child: subprocess.Popen[bytes] | None
        try:
            # The trainer gets its own process group so a deadline or cancel kills all workers.
            child = subprocess.Popen(
                args.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:  # e.g. a misspelt trainer.command: say so, never just vanish
            child = None
            code, ending = ExitCode.CANNOT_START, Ending.CANNOT_START
            reason = f"cannot start the trainer: {exc}"
            log.write(f"{reason}\n".encode())
        else:
            trainer_started = datetime.now(UTC)
            record = {
                "pid": child.pid,
                "start_time": process_start_time(child.pid),
                "attempt": args.attempt,
                "started_at": trainer_started.isoformat(),
            }
            atomic_write(folder / FILE_TRAINER, json.dumps(record).encode())
        # the deadline counts the trainer's running time, from its start
        deadline = time.monotonic() + args.deadline if args.deadline else None
        while child is not None:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancelled:
                _stop(child, args.grace)
                code, ending, reason = ExitCode.CANCELLED, Ending.CANCELLED, "cancelled"
                break
            if deadline is not None and time.monotonic() > deadline:
                _stop(child, args.grace)
                code, ending = ExitCode.DEADLINE, Ending.DEADLINE
                reason = f"deadline exceeded ({args.deadline:g} s)"
                break
        log.write(f"=== kubohb attempt {args.attempt} ended: exit {code} {reason or ''}\n".encode())
    if args.store_root and args.log_key:
        problem = _upload_log(log_path, args.store_root, args.log_key)
        if problem:
            with log_path.open("a") as text_log:
                text_log.write(problem + "\n")
    write_exit(folder, code, ending, reason, args.attempt, trainer_started)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.backends.local.wrap")
    parser.add_argument("--dir", required=True, help="the trial's run folder")
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=None, help="seconds")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds from SIGTERM to SIGKILL")
    parser.add_argument("--store-root", default=None)
    parser.add_argument("--log-key", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no trainer command after --")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
