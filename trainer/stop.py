"""A stop request: SIGTERM or SIGINT as what a pod gets before it is killed, turned into a
checkpoint at the next optimiser-step boundary (docs/trainer.md, "Preemption"). Torch-free."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.train import Trainer


class Stopped(BaseException):
    """The attempt stops on a signal (exit CANCELLED). A BaseException, as KeyboardInterrupt, so
    that no library's ``except Exception`` (a download's retry loop) swallows it."""


class StopRequest:
    """SIGTERM or SIGINT as a request to stop: what a pod gets before it is killed (spot reclaim,
    eviction, preemption, node drain, Job deletion) and what the local backend's wrapper sends on
    cancel and at the deadline, a grace period before SIGKILL.

    The handler only records the first signal and the step the trainer was at; while the trial is
    still loading (reading trial.json, the data set) it also raises ``Stopped``: nothing has been
    written, so the attempt leaves at once. Once the trial run begins, the loop checks
    ``requested`` between phases and after every optimiser step, checkpoints at that boundary and
    stops. Later signals are only counted, so a checkpoint upload in progress always finishes
    (SIGKILL is the way to stop at once; uploads are atomic, so even that leaves the last
    checkpoint whole)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.signals = 0
        self.at_step: int | None = None  # the trainer's step when the first signal came
        self.loading = True  # before the trial run begins: a signal raises Stopped
        self.trainer: Trainer | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1  # plain attribute writes only: no I/O, no lock, in a handler
        if self.signum is not None:
            return
        self.signum = signum
        if self.trainer is not None:
            self.at_step = self.trainer.progress.step
        if self.loading:
            raise Stopped

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """The handlers for the duration, the previous ones restored after. A signal ignored
        when the process started (a background job's SIGINT) stays ignored. Only the main
        thread can take signals: elsewhere (run_trial in a thread) nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s, handler in previous.items():
            if handler is not signal.SIG_IGN:
                signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)

    def describe(self) -> dict[str, Any]:
        name = signal.Signals(self.signum).name if self.signum is not None else None
        return {"signal": name, "signals": self.signals, "signalled_at_step": self.at_step}
