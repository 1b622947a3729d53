"""The local backend (the embedded default): one subprocess per trial on this machine.

Each attempt runs under the wrapper ``controller.backends.local.wrap`` in its own session, so
killing the controller leaves trials running. The run folder ``<run_dir>/<sweep>/<trial>/`` holds
``proc.json`` (the wrapper's pid and its start time from /proc, so a recycled pid is never mistaken
for it, and the attempt's token), ``exit.json`` (written by the wrapper) and ``trainer.log``. A
restarted controller adopts every trial whose wrapper still runs; a trial whose wrapper is gone
without an exit file is "lost", and its relaunch first kills what is left of the lost attempt.

``proc.json`` is written twice per launch: with the new token but no pid *before* the wrapper
starts, and with its pid after. A controller killed between the two leaves a wrapper that no pid
names; the token in the wrapper's environment finds it (``_adopt_unnamed``), so the next
controller adopts it instead of launching the trial a second time beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.backends.base import (
    LOG_TAIL_BYTES,
    Backend,
    Ending,
    ExitCode,
    Launch,
    TrialState,
)
from controller.backends.local import tree
from controller.backends.local.wrap import (
    DEFAULT_LOG_CAP,
    FILE_EXIT,
    FILE_LOCAL_LOG,
    FILE_TRAINER,
    process_start_time,
)
from controller.log import event
from trainer.contract import FILE_LOG, trial_prefix
from trainer.store import atomic_write

FILE_PROC = "proc.json"
# close() waits at most this long, in all, for wrappers finishing an ended attempt
CLOSE_WAIT_S = 30.0
FILE_CANCELLED = "cancelled"


def detect_gpus() -> list[int]:
    """GPU ids from CUDA_VISIBLE_DEVICES, else from nvidia-smi; [] when there is none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(x) for x in visible.split(",") if x.strip().isdigit()]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


class LocalBackend(Backend):
    name = "local"

    def __init__(
        self,
        sweep: str,
        run_dir: str | Path,
        command: list[str],
        *,
        store_root: str,
        store_endpoint_url: str | None = None,
        store_region: str | None = None,
        gpus: list[int] | None = None,
        gpus_per_trial: int = 0,
        env: dict[str, str] | None = None,
        cancel_grace_s: float = 10.0,
        log_cap_mb: float = DEFAULT_LOG_CAP / 2**20,
        log_upload_interval_s: float = 30.0,
    ) -> None:
        self.sweep = sweep
        self.dir = Path(run_dir).resolve() / sweep
        self.dir.mkdir(parents=True, exist_ok=True)
        # "python" means this interpreter: the venv that runs the controller also runs trials.
        self.command = [sys.executable if command[0] == "python" else command[0], *command[1:]]
        self.store_root = store_root
        self.endpoint_url = store_endpoint_url
        self.region = store_region
        self.gpus = detect_gpus() if gpus is None else list(gpus)
        self.gpus_per_trial = gpus_per_trial
        if gpus_per_trial > len(self.gpus):
            raise ValueError(
                f"trainer.resources.gpus: {gpus_per_trial} GPU(s) per trial but this machine has "
                f"{len(self.gpus)}; set it to 0 to train on CPU"
            )
        self.env = dict(env or {})
        self.grace = cancel_grace_s
        self.log_cap = max(1, int(log_cap_mb * 2**20))
        self.log_upload_interval_s = log_upload_interval_s
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def capacity(self) -> int | None:
        """Trials that fit at once: one per GPU slot; unlimited (the sweep's parallelism) on CPU."""
        return len(self.gpus) // self.gpus_per_trial if self.gpus_per_trial else None

    # -- run folder -------------------------------------------------------------------------
    def _folder(self, trial_id: str) -> Path:
        return self.dir / trial_id

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def _live(self, path: Path) -> dict[str, Any] | None:
        """The pid record at ``path`` if that very process (same start time) still runs."""
        return _running(self._read(path))

    def _alive(self, trial_id: str) -> dict[str, Any] | None:
        """The proc record if its wrapper still runs."""
        child = self._children.get(trial_id)
        if child is not None and child.poll() is not None:  # reap our own exited children
            del self._children[trial_id]
        path = self._folder(trial_id) / FILE_PROC
        record = self._read(path)
        if record and record.get("pid") is None and record.get("token"):
            return self._adopt_unnamed(path, record)
        return _running(record)

    def _adopt_unnamed(self, path: Path, record: dict[str, Any]) -> dict[str, Any] | None:
        """A launch record without a pid: its controller died between starting the wrapper and
        naming it. The wrapper is the process with the attempt's token that runs the wrapper
        module (its trainer's tree carries the token too); found, it is named in the record, so
        this scan of /proc happens once. None if no wrapper ever started."""
        wrappers = [p for p in tree.find([], [str(record["token"])]) if _is_wrapper(p)]
        if len(wrappers) != 1:
            return None
        pid = wrappers[0]
        named = {**record, "pid": pid, "start_time": process_start_time(pid)}
        atomic_write(path, json.dumps(named).encode())
        event("trial.wrapper_adopted", trial=path.parent.name, pid=pid)
        return named

    def _kill_stale_trainer(self, folder: Path) -> None:
        """A lost attempt's processes may outlive its wrapper (SIGKILLed, e.g. by the OOM killer):
        never run two attempts at once. They were reparented to init, so they are found by the
        attempt's token in their environment, and the stale trainer's own descendants by pid."""
        stale = self._live(folder / FILE_TRAINER)
        if stale:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stale["pid"], signal.SIGKILL)
        records = (self._read(folder / FILE_PROC), self._read(folder / FILE_TRAINER))
        tokens = {str(r["token"]) for r in records if r and r.get("token")}
        if not stale and not tokens:
            return
        roots = [stale["pid"]] if stale else []
        found, survivors = tree.stop(lambda: tree.find(roots, tokens, with_roots=True), grace_s=0)
        if found:
            event("trial.stale_processes_killed", trial=folder.name, count=len(found))
        if survivors:
            event("trial.unkillable", logging.ERROR, trial=folder.name, pids=sorted(survivors))

    def _busy_gpus(self) -> set[int]:
        busy: set[int] = set()
        for folder in self.dir.iterdir():
            proc = self._alive(folder.name) if folder.is_dir() else None
            if proc:
                busy.update(proc.get("gpus", []))
        return busy

    # -- Backend ----------------------------------------------------------------------------
    def launch(self, launch: Launch) -> None:
        folder = self._folder(launch.trial_id)
        if self._alive(launch.trial_id) and not (folder / FILE_EXIT).exists():
            return  # idempotent: this trial already runs
        folder.mkdir(parents=True, exist_ok=True)
        old = self._read(folder / FILE_PROC) or {}
        attempt = int(old.get("attempt", 0)) + 1
        self._kill_stale_trainer(folder)
        (folder / FILE_CANCELLED).unlink(missing_ok=True)
        exit_file = folder / FILE_EXIT
        if exit_file.exists():  # a previous attempt's: keep it for the record
            exit_file.replace(folder / f"exit.{attempt - 1}.json")
        gpus: list[int] = []
        if self.gpus_per_trial:
            busy = self._busy_gpus()  # one scan of the run folder, not one per GPU
            free = [g for g in self.gpus if g not in busy]
            if len(free) < self.gpus_per_trial:
                raise RuntimeError(f"trial {launch.trial_id}: no free GPU slot (all in use)")
            gpus = free[: self.gpus_per_trial]
        env = {
            **os.environ,
            **self.env,
            **launch.env,
            "KUBOHB_TRIAL": launch.trial_url,
            "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
        }
        for name, value in (
            ("KUBOHB_STORE_ENDPOINT", self.endpoint_url),
            ("KUBOHB_STORE_REGION", self.region),
        ):
            if value:
                env[name] = value
        # the token marks every process of the attempt (the wrapper too), found by it even once
        # the wrapper is gone, or before its pid is on record
        token = secrets.token_hex(8)
        env[tree.TOKEN_VAR] = token
        record: dict[str, Any] = {
            "pid": None,
            "start_time": None,
            "attempt": attempt,
            "gpus": gpus,
            "token": token,
            "launched_at": datetime.now(UTC).isoformat(),
        }
        atomic_write(folder / FILE_PROC, json.dumps(record).encode())  # before the wrapper runs
        argv = [
            sys.executable,
            "-m",
            "controller.backends.local.wrap",
            "--dir",
            str(folder),
            "--attempt",
            str(attempt),
            "--grace",
            str(self.grace),
            "--log-cap",
            str(self.log_cap),
            "--log-upload-interval",
            str(self.log_upload_interval_s),
            "--token",
            token,
            "--store-root",
            self.store_root,
            "--log-key",
            f"{trial_prefix(self.sweep, launch.trial_id)}/{FILE_LOG}",
        ]
        if launch.deadline_s:
            argv += ["--deadline", str(launch.deadline_s)]
        with (folder / "wrapper.log").open("ab") as wlog:
            child = subprocess.Popen(
                [*argv, "--", *self.command, "--trial", launch.trial_url],
                stdin=subprocess.DEVNULL,
                stdout=wlog,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # survives a SIGKILL of the controller
            )
        self._children[launch.trial_id] = child
        record.update(pid=child.pid, start_time=process_start_time(child.pid))
        atomic_write(folder / FILE_PROC, json.dumps(record).encode())

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        states: dict[str, TrialState] = {}
        for trial_id in trial_ids:
            # exit.json first: launch() moves an earlier attempt's away, so it is this attempt's
            done = self._read(self._folder(trial_id) / FILE_EXIT)
            proc = None if done is not None else self._alive(trial_id)
            if done is not None:
                started, ended = _time(done.get("started_at")), _time(done.get("ended_at"))
                states[trial_id] = TrialState(
                    trial_id=trial_id,
                    phase="exited",
                    exit_code=done.get("exit_code"),
                    ending=Ending(done.get("ending", Ending.EXITED)),
                    reason=done.get("reason"),
                    started_at=started,
                    ended_at=ended,
                    run_s=_seconds(started, ended),
                )
            elif proc is not None:
                states[trial_id] = self._running(trial_id, proc)
            elif (self._folder(trial_id) / FILE_CANCELLED).exists():
                # cancelled before its wrapper could catch SIGTERM (it was still starting)
                states[trial_id] = TrialState(
                    trial_id=trial_id,
                    phase="exited",
                    exit_code=ExitCode.CANCELLED,
                    ending=Ending.CANCELLED,
                    reason="cancelled",
                )
            else:
                record = self._read(self._folder(trial_id) / FILE_PROC)
                known = bool(record and record.get("pid") is not None)
                reason = "trial process gone without an exit code" if known else "never started"
                states[trial_id] = TrialState(trial_id=trial_id, phase="lost", reason=reason)
        return states

    def _running(self, trial_id: str, proc: dict[str, Any]) -> TrialState:
        """A live wrapper: running since its trainer started. There is no queue on this machine,
        so in the milliseconds before the wrapper has started this attempt's trainer it counts
        as running since the wrapper's own start (an earlier attempt's trainer.json does not)."""
        trainer = self._read(self._folder(trial_id) / FILE_TRAINER) or {}
        started = _time(trainer.get("started_at"))
        if started is None or trainer.get("attempt") != proc.get("attempt"):
            started = _time(proc.get("launched_at")) or datetime.now(UTC)
        return TrialState(
            trial_id=trial_id,
            phase="running",
            started_at=started,
            run_s=_seconds(started, datetime.now(UTC)),
        )

    def cancel(self, trial_id: str) -> None:
        proc = self._alive(trial_id)
        if proc:
            (self._folder(trial_id) / FILE_CANCELLED).touch()
            # the wrapper stops the trainer, uploads the log and writes exit.json
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc["pid"], signal.SIGTERM)

    def log_tail(self, trial_id: str) -> bytes | None:
        """The end of the last attempt's output in the run folder (the store's trainer.log is
        the next attempt's once it runs)."""
        try:
            with (self._folder(trial_id) / FILE_LOCAL_LOG).open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                return f.read()
        except FileNotFoundError:
            return None

    def adopt(self) -> set[str]:
        return {
            folder.name
            for folder in self.dir.iterdir()
            if folder.is_dir() and not (folder / FILE_EXIT).exists() and self._alive(folder.name)
        }

    def close(self) -> None:
        """Reap the wrappers that ended; wait (up to CLOSE_WAIT_S in all) for those whose trainer
        has exited and that are still writing the attempt's end (its log to the store, its exit
        record): a sweep that ends on its last result must not leave that trial's log behind.
        Wrappers of trainers that still run keep running (the next run adopts them)."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        for trial_id, child in list(self._children.items()):
            if child.poll() is not None:
                continue
            folder = self._folder(trial_id)
            proc, trainer = self._read(folder / FILE_PROC), self._read(folder / FILE_TRAINER)
            if not (proc and trainer and trainer.get("token") == proc.get("token")):
                continue  # this attempt's trainer has not started: it is not ending
            if self._live(folder / FILE_TRAINER) is not None:
                continue  # its trainer runs: not ending, leave it to the next run
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue


def _running(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """``record`` if the process it names (same pid, same start time) still runs."""
    pid = record.get("pid") if record else None
    if record and pid is not None and process_start_time(pid) == record["start_time"]:
        return record
    return None


def _is_wrapper(pid: int) -> bool:
    try:
        return b"controller.backends.local.wrap" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return max(0.0, (end - start).total_seconds()) if start and end else None
