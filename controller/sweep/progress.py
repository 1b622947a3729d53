"""The live display of ``kubohb run`` (rich), shown only when stdout is a terminal."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live

from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState
from controller.sweep.status import render, summarize


class LiveProgress:
    """Redraws the sweep's status at most ``every_s`` seconds; logs go above it (stderr). With
    the ``spec``, each cap's use and the ETA too (no store reads: the trials' progress lines are
    ``kubohb status``'s)."""

    def __init__(
        self,
        console: Console | None = None,
        every_s: float = 0.5,
        spec: SweepSpec | None = None,
    ) -> None:
        self.console = console or Console()
        self.every_s = every_s
        self.spec = spec
        self._last = 0.0
        self._live = Live(console=self.console, auto_refresh=False, redirect_stderr=True)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)

    def __call__(self, state: SweepState) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and state.status == "running":
            return
        self._last = now
        self._live.update(render(summarize(state, spec=self.spec)), refresh=True)
