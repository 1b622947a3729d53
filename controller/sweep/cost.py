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
    """The sweep's caps. ``gpu_hour_price`` prices an attempt that carries no price of its own
    (``Running.price`` None): a sweep without price classes. Each cap is checked in its own unit,
    device-seconds or money, so attempts of differently priced device classes (``cost.classes``)
    count for the money cap at their own price."""

    max_gpu_hours: float | None = None
    max_cost: float | None = None
    gpu_hour_price: float = 0.0

    def any(self) -> bool:
        return self.max_gpu_hours is not None or self.max_cost is not None

    def price(self, r: Running) -> float:
        return self.gpu_hour_price if r.price is None else r.price

    def short(self, total: Spend) -> CapReason | None:
        """The first cap that ``total`` reaches (gpu hours first), or None."""
        if self.max_gpu_hours is not None and total.device_s >= self.max_gpu_hours * 3600.0:
            return "max_gpu_hours"
        if self.max_cost is not None and total.money >= self.max_cost:
            return "max_cost"
        return None

    def over(self, total: Spend) -> CapReason | None:
        """The first cap that ``total`` passes (gpu hours first), or None."""
        if self.max_gpu_hours is not None and total.device_s > self.max_gpu_hours * 3600.0:
            return "max_gpu_hours"
        if self.max_cost is not None and total.money > self.max_cost:
            return "max_cost"
        return None

    def left(self, total: Spend) -> Spend:
        """What each cap still allows beyond ``total`` (infinite where there is no cap)."""
        inf = float("inf")
        device_s = inf if self.max_gpu_hours is None else self.max_gpu_hours * 3600.0
        cash = inf if self.max_cost is None else self.max_cost
        return Spend(device_s - total.device_s, cash - total.money)

    def binding(self) -> CapReason | None:
        """The cap that binds first at ``gpu_hour_price`` (a single-priced sweep's view; gpu
        hours win a tie): what a sweep stopped by its caps names as its stop reason."""
        limits: dict[CapReason, float] = {}
        if self.max_gpu_hours is not None:
            limits["max_gpu_hours"] = self.max_gpu_hours * 3600.0
        if self.max_cost is not None:
            price = self.gpu_hour_price
            limits["max_cost"] = self.max_cost / price * 3600.0 if price > 0 else float("inf")
        return min(limits.items(), key=lambda item: item[1])[0] if limits else None


def money(device_s: float, gpu_hour_price: float) -> float:
    return device_s / 3600.0 * gpu_hour_price


@dataclass(frozen=True)
class Spend:
    """An amount in both units a cap can count: device-seconds and money."""

    device_s: float = 0.0
    money: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.device_s + other.device_s, self.money + other.money)

    def fits_in(self, room: Spend) -> bool:
        return self.short_of(room) is None

    def short_of(self, room: Spend) -> CapReason | None:
        """Which of ``room``'s units this does not fit in (device-hours first), or None."""
        if self.device_s > room.device_s:
            return "max_gpu_hours"
        if self.money > room.money:
            return "max_cost"
        return None


@dataclass(frozen=True)
class Running:
    """One launched attempt (queued or running), as the cost logic sees it."""

    elapsed_s: float  # running seconds so far (0 while queued)
    deadline_s: float
    gpus: int
    reserve_s: float | None = None  # its expected running seconds; None = its deadline
    price: float | None = None  # money per device-hour; None = the caps' gpu_hour_price


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


def _spent(caps: Caps, spent_s: float, spent_money: float | None) -> Spend:
    # a sweep without price classes: its money is its device-seconds at the one price
    return Spend(
        spent_s, money(spent_s, caps.gpu_hour_price) if spent_money is None else spent_money
    )


def accounted_spend(
    caps: Caps, spent_s: float, running: Iterable[Running], spent_money: float | None = None
) -> Spend:
    """``accounted`` in both units, each running attempt at its own price."""
    total = _spent(caps, spent_s, spent_money)
    for r in running:
        c = charge(r.elapsed_s, r.deadline_s, r.gpus)
        total += Spend(c, money(c, caps.price(r)))
    return total


def committed_spend(
    caps: Caps, spent_s: float, running: Iterable[Running], spent_money: float | None = None
) -> Spend:
    """What is spent plus what every launched attempt holds, in both units, each attempt at
    its own price."""
    total = _spent(caps, spent_s, spent_money)
    for r in running:
        h = held(r)
        total += Spend(h, money(h, caps.price(r)))
    return total


def can_launch(
    caps: Caps,
    spent_s: float,
    running: Iterable[Running],
    reserve_s: float,
    gpus: int,
    *,
    spent_money: float | None = None,
    price: float | None = None,
) -> bool:
    """Whether a new attempt's reservation (at ``price`` per device-hour; None = the caps'
    price) fits under every cap beside what is held already."""
    return blocking(caps, spent_s, running, reserve_s, gpus, spent_money, price) is None


def blocking(
    caps: Caps,
    spent_s: float,
    running: Iterable[Running],
    reserve_s: float,
    gpus: int,
    spent_money: float | None = None,
    price: float | None = None,
) -> CapReason | None:
    """The cap a new attempt's reservation does not fit under (``can_launch``), or None."""
    if not caps.any():
        return None
    new_s = reserve_s * devices(gpus)
    new = Spend(new_s, money(new_s, caps.gpu_hour_price if price is None else price))
    return caps.over(committed_spend(caps, spent_s, running, spent_money) + new)


def cap_hit(
    caps: Caps, spent_s: float, running: Iterable[Running], *, spent_money: float | None = None
) -> CapReason | None:
    """A cap that the accounted total has reached (running attempts must be cancelled)."""
    if not caps.any():
        return None
    return caps.short(accounted_spend(caps, spent_s, running, spent_money))
