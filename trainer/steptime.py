"""Timing training steps for the seconds budget: the host clock on CPU, CUDA events on a GPU.

On CPU a step's kernels have run when it returns, so the host clock is exact at no cost. On a GPU
the host runs ahead of the device; waiting for it around every step (two syncs) costs a large
share of a small network's throughput, so ``CudaTimer`` records a pair of events around each step
and reads them all with one wait when the loop flushes (``trainer.train``, "GPU path" in
docs/trainer.md).
"""

from __future__ import annotations

import time
from typing import Protocol

import torch


class StepTimer(Protocol):
    """Times training steps. ``exact``: a step's time can be read as soon as it returns."""

    exact: bool

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def collect(self) -> list[float]:
        """Seconds of each step timed since the last collect, in order."""
        ...


class HostTimer:
    """The host clock, exact at no cost on CPU: a step's kernels have run when it returns."""

    exact = True

    def __init__(self) -> None:
        self._t0 = 0.0
        self._done: list[float] = []

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self._done.append(time.perf_counter() - self._t0)

    def collect(self) -> list[float]:
        done, self._done = self._done, []
        return done


class CudaTimer:
    """CUDA events around each step on its stream: the GPU's clock, read in ``collect`` with one
    wait for the last event, so the host does not wait per step and runs ahead as usual."""

    exact = False

    def __init__(self) -> None:
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []  # reused pool
        self._n = 0

    def start(self) -> None:
        if self._n == len(self._events):
            pair = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._events.append(pair)
        self._events[self._n][0].record()

    def stop(self) -> None:
        self._events[self._n][1].record()
        self._n += 1

    def collect(self) -> list[float]:
        pairs, self._n = self._events[: self._n], 0
        if not pairs:
            return []
        pairs[-1][1].synchronize()
        return [start.elapsed_time(end) / 1000.0 for start, end in pairs]  # ms -> s
