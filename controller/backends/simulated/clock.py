"""Virtual time for the simulator: a discrete-event clock that the real loop sleeps on.

The sweep loop reads the time from a ``Clock`` and sleeps between ticks. ``SimClock`` keeps time
as float seconds from ``start`` and a heap of events ``(time, sequence, event)``; sleeping
processes the events that fall in the slept interval, in (time, sequence) order, with the clock
set to each event's own time while its action runs. So an event's effects (a result written, a
slot freed, the next attempt admitted) carry the moment they happened, never the moment the loop
looked. Polls read state and change nothing, which is why the timeline cannot depend on when or
in which order the loop polls.

Jumps: ticking a 10,000-trial sweep through weeks of virtual time at a 30-second poll interval
would spend nearly all its time in ticks where nothing the loop acts on changes. An event is
*wake-worthy* when it changes a poll in a way the loop must act on (an attempt ending); the
others (an admission, a pod start, a preemption) are processed in order but do not stop a jump.
``sleep(seconds, wake_at)`` therefore lands on the first point of the poll grid (now + k ×
seconds) at or after the next wake-worthy event or ``wake_at`` (the loop's own next time rule,
such as a deadline), whichever is earlier: the loop then sees exactly what it would have seen at
that tick had it ticked through every one before it, at a fraction of the cost.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["Event", "SimClock"]

# Events looked at past the slept interval while searching for the next wake-worthy one: a bound
# for a timeline that never ends an attempt (preempted faster than it can checkpoint, say).
MAX_LOOKAHEAD_EVENTS = 1_000_000


@dataclass(eq=False, slots=True)
class Event:
    """One scheduled action; ``cancel()`` makes it a no-op (it stays in the heap until popped)."""

    at: float  # seconds from the clock's start
    wake: bool  # wake-worthy: an attempt's end, which the loop must act on
    action: Callable[[], None] = field(repr=False)
    live: bool = True

    def cancel(self) -> None:
        self.live = False


class SimClock:
    """The ``Clock`` protocol in virtual time (see the module docstring)."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        elif start.tzinfo is None:
            raise ValueError("SimClock: start must be timezone-aware")
        self.start = start.astimezone(UTC)
        self._t = 0.0
        self._seq = 0
        self._heap: list[tuple[float, int, Event]] = []
        self.events_processed = 0

    # -- reading the time -------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        """Virtual seconds since ``start``."""
        return self._t

    def at(self, seconds: float) -> datetime:
        """The moment ``seconds`` after ``start``."""
        return self.start + timedelta(seconds=seconds)

    def seconds(self, moment: datetime) -> float:
        """Seconds from ``start`` to ``moment`` (timezone-aware)."""
        return (moment - self.start).total_seconds()

    def now(self) -> datetime:
        return self.at(self._t)

    # -- events -----------------------------------------------------------------------------
    def call_at(self, at: float, action: Callable[[], None], *, wake: bool) -> Event:
        """Run ``action`` at ``at`` seconds from start (never in the past: clipped to now)."""
        event = Event(max(at, self._t), wake, action)
        self._seq += 1
        heapq.heappush(self._heap, (event.at, self._seq, event))
        return event

    def _peek(self) -> Event | None:
        heap = self._heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def _step(self) -> None:
        """Process the earliest live event (the caller has peeked it)."""
        event = heapq.heappop(self._heap)[2]
        self._t = event.at
        event.live = False
        self.events_processed += 1
        event.action()

    def advance_to(self, t: float) -> bool:
        """Process every event with time <= ``t`` in order, then set the time to ``t``; whether
        a wake-worthy one was among them."""
        woke = False
        while (event := self._peek()) is not None and event.at <= t:
            woke = woke or event.wake
            self._step()
        self._t = max(self._t, t)
        return woke

    def run(self) -> None:
        """Process every event until none is left (the time ends at the last one's)."""
        while self._peek() is not None:
            self._step()

    # -- the Clock protocol -----------------------------------------------------------------
    def sleep(self, seconds: float, wake_at: datetime | None = None) -> None:
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"SimClock.sleep: seconds must be finite and >= 0, got {seconds}")
        now = self._t
        target = now + seconds
        if self.advance_to(target) or seconds == 0:
            return  # the loop has something to act on at this tick: no jump
        limit = math.inf if wake_at is None else self.seconds(wake_at)
        if limit <= target:
            return
        # Look past the interval for the next wake-worthy event. The non-wake events before it
        # (admissions, pod starts, preemptions) are processed on the way: they may schedule it,
        # and they fall before the landing point anyway.
        nxt = limit
        for _ in range(MAX_LOOKAHEAD_EVENTS):
            event = self._peek()
            if event is None or event.at >= limit:
                break
            if event.wake:
                nxt = event.at
                break
            self._step()
        if math.isinf(nxt):  # nothing the loop could act on: land on the grid after what ran
            nxt = self._t
        steps = max(1, math.ceil((nxt - now) / seconds - 1e-9))
        while now + steps * seconds < nxt:  # float rounding: never land before nxt
            steps += 1
        self.advance_to(now + steps * seconds)
