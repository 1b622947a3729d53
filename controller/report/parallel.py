"""Map a function over items in up to two forked processes (the report's CPU-bound phases).

Fitting forests and drawing figures are CPU-bound and GIL-bound; forked children inherit the
imported modules, so two processes give nearly twice the speed on two cores. Where fork is not
available, or for a single item, the map runs in this process.

The function and the items reach the children by the fork itself (a module global set just
before the pool starts its processes), not by pickling: only the item's index goes to a child and
only the result comes back. Pickling the items was the cost: a figure task takes the whole
Analysis, and at 10,000 trials pickling and unpickling it took 7 s per task.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# (fn, items) of the map in progress; read by the forked children only
_job: tuple[Callable[[Any], Any], Sequence[Any]] | None = None
_lock = threading.Lock()  # one map at a time sets _job


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(2, cores or 1))


def _call(index: int) -> Any:
    assert _job is not None, "parallel_map's children are forked with the job set"
    fn, items = _job
    return fn(items[index])


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, in order; ``fn`` and ``items`` are inherited, never pickled
    (results are: they come back from the children)."""
    global _job
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(x) for x in items]
    ctx = multiprocessing.get_context("fork")
    with _lock:
        _job = (fn, items)
        try:
            # every child forks while _job is set: the pool starts them all before any result
            with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
                return list(pool.map(_call, range(len(items))))
        finally:
            _job = None
