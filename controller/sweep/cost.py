"""Cost accounting and cap checks: pure functions, no I/O, no clock.

The unit is the device-second: a trial's *running* time x its devices. A CPU-only trial counts as
one device, so ``max_gpu_hours`` also bounds CPU sweeps (and the tests, which have no GPU, prove
it). A running trial is charged its elapsed running time, clamped to its deadline (it is killed
there).

Each launched attempt *holds* part of a cap: its reservation (its expected running time, the
budget plus the startup allowance, ``SweepSpec.reserve_s``), or what it has used if that is more.
A launch is allowed when what is spent, plus what every launched attempt holds, plus the new one's
reservation fits the cap. Reserving the deadline instead (twice the budget, a hang guard) left
half of a capped cluster idle long before the cap was reached (docs/benchmarks.md, "Cluster
time"). An attempt may overrun its reservation, up to its deadline; when the accounted total then
reaches a cap, the loop cancels the running attempts at once (CANCELLED, resumable), so a cap is
passed by at most what accrues between two polls.
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
    """One launched attempt (queued or running), as the cost logic sees it."""

    elapsed_s: float  # running seconds so far (0 while queued)
    deadline_s: float
    gpus: int
    reserve_s: float | None = None  # its expected running seconds; None = its deadline


def reservation(reserve_s: float | None, deadline_s: float) -> float:
    """Running seconds a cap reserves for an attempt: its expectation, never past its deadline."""
    return deadline_s if reserve_s is None else min(reserve_s, deadline_s)


def held(r: Running) -> float:
    """Device-seconds a cap holds for a launched attempt: its reservation, or more once used."""
    reserved = reservation(r.reserve_s, r.deadline_s) * devices(r.gpus)
    return max(charge(r.elapsed_s, r.deadline_s, r.gpus), reserved)


def accounted(spent_s: float, running: Iterable[Running]) -> float:
    """Device-seconds so far: finished attempts plus the elapsed part of running ones."""
    return spent_s + sum(charge(r.elapsed_s, r.deadline_s, r.gpus) for r in running)


def committed(spent_s: float, running: Iterable[Running]) -> float:
    """Device-seconds spent plus what every launched attempt holds."""
    return spent_s + sum(held(r) for r in running)


def can_launch(
    caps: Caps, spent_s: float, running: Iterable[Running], reserve_s: float, gpus: int
) -> bool:
    """Whether a new attempt's reservation fits under every cap beside what is held already."""
    limit = caps.limit_s()
    if limit is None:
        return True
    return committed(spent_s, running) + reserve_s * devices(gpus) <= limit


def cap_hit(caps: Caps, spent_s: float, running: Iterable[Running]) -> CapReason | None:
    """A cap that the accounted total has reached (running attempts must be cancelled)."""
    limit = caps.limit_s()
    if limit is None or accounted(spent_s, running) < limit:
        return None
    return caps.binding()
