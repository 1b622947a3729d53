"""A local trial's log: the trainer's output, capped in memory and on disk, streamed to the store.

The wrapper reads the trainer's stdout and stderr from a pipe. A trainer that floods its output
must not fill the wrapper's memory, the disk or the store, so the log keeps the first part (how
the run started: versions, config, the first error) and the most recent output, and counts what
it drops between them in one marker line. The log is saved to the run folder and put to the store
while the trial runs, so a long trial's output can be read before it ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from controller.log import event
from trainer.store.base import atomic_fill

HEAD_BYTES = 64 * 1024
_CHUNK = 1 << 16
_SAVE_EVERY_S = 1.0  # how often the run folder's copy catches up, until the cap is reached
_LINE_SEARCH = 4096  # how far into the tail a cut looks for the start of a line


class CappedLog:
    """The first ``head`` bytes and the last ``cap - head`` bytes of all that is written, never
    more than ``cap`` bytes in memory; thread-safe (one thread writes, another saves)."""

    def __init__(self, cap: int, head: int | None = None) -> None:
        if cap < 1:
            raise ValueError(f"log cap must be at least 1 byte, not {cap}")
        self.head_cap = min(HEAD_BYTES, cap // 4) if head is None else min(head, cap)
        self.tail_cap = cap - self.head_cap
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.dropped = 0
        self.written = 0  # bytes ever written: a saved copy is stale when this has changed
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self.written += len(data)
            room = self.head_cap - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if len(data) > self.tail_cap:  # drop at once what could never be kept
                self.dropped += self._tail_len + len(data) - self.tail_cap
                self._tail.clear()
                self._tail_len = 0
                data = data[len(data) - self.tail_cap :]
            if not data:
                return
            self._tail.append(data)
            self._tail_len += len(data)
            excess = self._tail_len - self.tail_cap
            while excess > 0:
                first = self._tail[0]
                cut = min(excess, len(first))
                if cut == len(first):
                    self._tail.popleft()
                else:
                    self._tail[0] = first[cut:]
                self._tail_len -= cut
                self.dropped += cut
                excess -= cut

    def since(self, offset: int) -> tuple[list[bytes], int] | None:
        """The bytes written after the first ``offset`` ones, and where they end; None once
        anything was dropped (the log is no longer the output with more appended)."""
        with self._lock:
            if self.dropped or offset < 0:
                return None
            head = len(self._head)
            parts = [bytes(self._head[offset:])] if offset < head else []
            skip = max(0, offset - head)
            for chunk in self._tail:
                if skip < len(chunk):
                    parts.append(chunk[skip:])
                skip = max(0, skip - len(chunk))
            return parts, self.written

    def chunks(self) -> list[bytes]:
        """The log as it reads now: head, the marker (if anything was dropped), tail."""
        with self._lock:
            parts = [bytes(self._head)]
            tail = list(self._tail)
            if self.dropped:
                dropped = self.dropped
                # the tail starts mid-line: drop up to the next line too, if it is near
                cut = tail[0].find(b"\n", 0, _LINE_SEARCH) + 1 if tail else 0
                if cut:
                    tail[0] = tail[0][cut:]
                    dropped += cut
                newline = b"" if self._head.endswith(b"\n") or not self._head else b"\n"
                parts.append(
                    newline
                    + f"=== kubohb: {dropped} bytes of output dropped here (the log "
                    f"keeps the first {self.head_cap} and the last {self.tail_cap} bytes: "
                    "backend.local.log_cap_mb)\n".encode()
                )
            parts.extend(tail)
        return parts


def seed(log: CappedLog, path: Path) -> None:
    """Start from an earlier attempt's log (the trial's log spans its attempts), read in chunks:
    it may come from a wrapper that kept no cap."""
    try:
        with path.open("rb") as earlier:
            while chunk := earlier.read(1 << 20):
                log.write(chunk)
    except FileNotFoundError:
        pass


def save(log: CappedLog, path: Path, *, durable: bool = False) -> None:
    """Replace ``path`` with the log, whole (a temporary file renamed over it)."""
    atomic_fill(path, lambda out: out.writelines(log.chunks()), durable=durable)


def pump(fd: int, log: CappedLog) -> threading.Thread:
    """A thread that copies the pipe ``fd`` into ``log`` until every writer has closed it."""

    def copy() -> None:
        while True:
            try:
                data = os.read(fd, _CHUNK)
            except OSError:
                return
            if not data:
                return
            log.write(data)

    thread = threading.Thread(target=copy, name="trainer-output", daemon=True)
    thread.start()
    return thread


class Uploader:
    """Keeps the run folder's copy of the log current and puts it to the store every
    ``interval_s``, in its own thread: a slow or unreachable store never delays a deadline or a
    cancel, and a failed upload is logged and tried again at the next interval. The copy grows
    by appends, as cheap as the output itself, until the cap is reached; from then on it is
    rewritten whole, so only as often as it is uploaded."""

    def __init__(
        self,
        log: CappedLog,
        path: Path,
        upload: Callable[[Path], None] | None,
        interval_s: float,
        target: str = "",
    ) -> None:
        self.log, self.path, self.upload = log, path, upload
        self.interval_s, self.target = interval_s, target
        self._saved = log.written  # the copy holds the log up to here (it was seeded from it)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-upload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _refresh(self, rewrite: bool) -> None:
        new = self.log.since(self._saved)
        if new is not None:
            chunks, end = new
            self._saved = -1  # a failed append leaves a torn copy: rewrite it
            with self.path.open("ab") as out:
                out.writelines(chunks)
            self._saved = end
        elif rewrite:
            written = self.log.written
            save(self.log, self.path)
            self._saved = written

    def _run(self) -> None:
        uploaded = -1  # log.written when last uploaded
        due = time.monotonic() + self.interval_s
        while not self._done.wait(min(_SAVE_EVERY_S, self.interval_s)):
            upload_now = time.monotonic() >= due and self.log.written != uploaded
            try:
                if self.log.written != self._saved:
                    self._refresh(rewrite=upload_now)
                if upload_now:
                    due = time.monotonic() + self.interval_s
                    written = self._saved
                    if self.upload:
                        self.upload(self.path)
                    uploaded = written
            except Exception as exc:  # whatever the store raises, the trial goes on
                event("trial.log_upload_failed", logging.WARNING, to=self.target, error=str(exc))

    def finish(self) -> str | None:
        """Stop the thread, then save and upload one last time: the problem, or None."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        problem = None
        try:
            save(self.log, self.path, durable=True)
            if self.upload:
                self.upload(self.path)
        except Exception as exc:  # the exit code must still be written
            problem = f"log upload to {self.target} failed: {exc}"
            self.log.write(f"{problem}\n".encode())
            try:
                save(self.log, self.path, durable=True)
            except OSError as again:
                problem += f"; cannot save {self.path} either: {again}"
        return problem
