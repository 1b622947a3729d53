"""Cost accounting and cap checks: pure functions, no I/O, no clock.

The unit is the device-second: a trial's run time x its devices. A CPU-only trial counts as one
device, so ``max_gpu_hours`` also bounds CPU sweeps (and the tests, which have no GPU, prove it).
A running trial is charged its elapsed time, clamped to its deadline (the backend kills it there);
a launch is allowed only when the worst case of every running trial plus the new one's fits the
cap, so the accounted total can never pass a cap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

CapReason = Literal["max_gpu_hours", "max_cost"]


def devices(gpus: int) -> int:
    """Devices a trial occupies for accounting: its GPUs, or 1 when it runs on CPU only."""
    return max(int(gpus), 1)


def charge(elapsed_s: float, deadline_s: float, gpus: int) -> float:
    """Device-seconds of one attempt that ran ``elapsed_s`` (clamped to [0, deadline])."""
    return min(max(elapsed_s, 0.0), deadline_s) * devices(gpus)


def worst_case(deadline_s: float, gpus: int) -> float:
    return deadline_s * devices(gpus)


@dataclass(frozen=True)
class Caps:
    max_gpu_hours: float | None = None
    max_cost: float | None = None
    gpu_hour_price: float = 0.0

    def _limits_s(self) -> dict[CapReason, float]:
        """Each set cap as device-seconds (money converted at the price; unpriced money is none)."""
        limits: dict[CapReason, float] = {}
        if self.max_gpu_hours is not None:
            limits["max_gpu_hours"] = self.max_gpu_hours * 3600.0
        if self.max_cost is not None and self.gpu_hour_price > 0:
            limits["max_cost"] = self.max_cost / self.gpu_hour_price * 3600.0
        return limits

    def limit_s(self) -> float | None:
        """The tightest cap as device-seconds, or None."""
        limits = self._limits_s()
        return min(limits.values()) if limits else None

    def binding(self) -> CapReason | None:
        """Which cap limit_s() comes from (gpu hours win a tie)."""
        limits = self._limits_s()
        return min(limits.items(), key=lambda item: item[1])[0] if limits else None


def money(device_s: float, gpu_hour_price: float) -> float:
    return device_s / 3600.0 * gpu_hour_price


@dataclass(frozen=True)
class Running:
    """One running attempt, as the cost logic sees it."""

    elapsed_s: float
    deadline_s: float
    gpus: int


def accounted(spent_s: float, running: Iterable[Running]) -> float:
    """Device-seconds so far: finished attempts plus the elapsed part of running ones."""
    return spent_s + sum(charge(r.elapsed_s, r.deadline_s, r.gpus) for r in running)


def committed(spent_s: float, running: Iterable[Running]) -> float:
    """Device-seconds if every running attempt ran to its deadline."""
    return spent_s + sum(worst_case(r.deadline_s, r.gpus) for r in running)


def can_launch(
    caps: Caps, spent_s: float, running: Iterable[Running], deadline_s: float, gpus: int
) -> bool:
    """Whether a new attempt fits under every cap even if everything runs to its deadline."""
    limit = caps.limit_s()
    if limit is None:
        return True
    return committed(spent_s, running) + worst_case(deadline_s, gpus) <= limit


def cap_hit(caps: Caps, spent_s: float, running: Iterable[Running]) -> CapReason | None:
    """A cap that the accounted total has reached (running attempts must be cancelled)."""
    limit = caps.limit_s()
    if limit is None or accounted(spent_s, running) < limit:
        return None
    return caps.binding()
