"""What a sweep will cost before it runs: its BOHB schedule, priced, and the same sweep simulated.

Two views. The *schedule* is pure arithmetic on the spec: the brackets BOHB opens (up to
``stop.max_iterations``, or until ``max_trials`` or a cap would stop it), each rung's trial count
and budget, and per trial its nominal device-hours (training time: a seconds budget, or epochs x
``trials.seconds_per_epoch``) and its worst case (its deadline). The *simulation* runs the sweep
itself — the real scheduler, BOHB and cost caps — on the simulated backend in virtual time with
``parallelism`` trials at once (no queue beyond it) and the simulator's pod start latency, so it
says how long the sweep takes, what it spends, and whether a cap stops it before its first
result on the largest budget. Nothing is written to the sweep's store.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from controller.backends.simulated import SimulatedBackend, SyntheticObjective
from controller.bohb.hyperband import Schedule
from controller.sweep import cost
from controller.sweep.runner import run_sweep
from controller.sweep.spec import SweepSpec
from trainer.store.memory import MemoryStore


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RungRow(_Out):
    bracket: int
    rung: int  # index of the budget in the schedule
    budget: float
    price_class: str  # cost.classes' name of the rung's devices ("default": stop.gpu_hour_price)
    trials: int
    gpu_hours_nominal: float
    gpu_hours_worst: float
    cost_nominal: float
    cost_worst: float


class ClassCost(_Out):
    """One device class's share: device-hours and money, nominal and worst case."""

    price: float  # money per device-hour
    spot: bool
    rungs: list[int]
    gpu_hours_nominal: float
    gpu_hours_worst: float
    cost_nominal: float
    cost_worst: float


class Simulated(_Out):
    """The sweep run on the simulator: what it ran, spent and took."""

    trials: int
    gpu_hours: float
    cost: float
    gpu_hours_by_class: dict[str, float]
    cost_by_class: dict[str, float]
    wall_clock_s: float
    stop_reason: str
    first_max_budget_result_s: float | None  # from the start; None: the sweep never got one


class Estimate(_Out):
    sweep: str
    budget_unit: str
    brackets: int
    # no max_iterations: listed until a cap or max_trials stops it, else (a deadline alone) one
    # cycle of brackets, one per budget: the simulation says how far the deadline gets
    open_ended: bool
    trials: int
    gpu_hours_nominal: float
    gpu_hours_worst: float
    gpu_hour_price: float
    cost_nominal: float
    cost_worst: float
    by_class: dict[str, ClassCost]
    rungs: list[RungRow]
    cap: str | None  # the cap the nominal schedule reaches first, else the one that binds first
    cap_gpu_hours: float | None
    cap_cost: float | None
    simulated: Simulated | None
    warnings: list[str]

    def summary(self) -> str:
        """One line: trials, device-hours nominal/worst, money, and the simulated outcome."""
        money = ""
        if self.cost_worst > 0:
            money = f", {self.cost_nominal:,.0f} (worst {self.cost_worst:,.0f}) in money"
        line = (
            f"{self.trials} trials in {self.brackets} brackets"
            f"{' (open-ended: until a stop)' if self.open_ended else ''}, "
            f"{self.gpu_hours_nominal:,.1f} device-hours nominal "
            f"(worst {self.gpu_hours_worst:,.1f}){money}"
        )
        if self.simulated is not None:
            hours = self.simulated.wall_clock_s / 3600
            line += f"; simulated: {hours:,.1f} h, stopped by {self.simulated.stop_reason}"
        return line


def _trial_hours(spec: SweepSpec, budget: float, from_budget: float) -> tuple[float, float]:
    """(nominal, worst) device-hours of one trial at ``budget``, on its rung's device class (a
    continued promotion's increment above ``from_budget``; its worst case is a trainer that
    finds no checkpoint and runs to the whole budget's deadline)."""
    devices = cost.devices(spec.trainer.resources.gpus)
    nominal = spec.train_seconds(budget, from_budget) * devices / 3600
    return nominal, spec.deadline_s(budget) * devices / 3600


def schedule(spec: SweepSpec) -> tuple[list[RungRow], bool]:
    """The rungs of every bracket BOHB opens, and whether the sweep is open-ended (then listed
    where a cap or max_trials would stop it, as far as nominal costs tell, or else for one
    cycle of brackets)."""
    sched = Schedule(spec.budget.min, spec.budget.max, spec.budget.eta)
    stop = spec.stop
    caps = cost.Caps(stop.max_gpu_hours, stop.max_cost)
    open_ended = stop.max_iterations is None
    bounded = caps.any() or stop.max_trials is not None
    # a cap's bracket count is unknown beforehand: enough cycles to reach any cap that binds
    n_brackets = stop.max_iterations or (10_000 if bounded else sched.max_sh_iter)
    rows: list[RungRow] = []
    trials, spent = 0, cost.Spend()
    for i in range(n_brackets):
        b = sched.bracket(i)
        for stage, (n, budget) in enumerate(zip(b.num_configs, b.budgets, strict=True)):
            rung = b.first_rung + stage
            nominal, worst = _trial_hours(spec, budget, spec.continued_from(rung, b.first_rung))
            name, price, _ = spec.price_class(rung)
            rows.append(
                RungRow(
                    bracket=i,
                    rung=rung,
                    budget=budget,
                    price_class=name,
                    trials=n,
                    gpu_hours_nominal=n * nominal,
                    gpu_hours_worst=n * worst,
                    cost_nominal=n * nominal * price,
                    cost_worst=n * worst * price,
                )
            )
            trials += n
            spent += cost.Spend(n * nominal * 3600, n * nominal * price)
        if stop.max_trials is not None and trials >= stop.max_trials:
            break
        if open_ended and caps.short(spent) is not None:
            break
    return rows, open_ended


def simulate(spec: SweepSpec) -> Simulated:
    """Run the sweep on the simulator (``parallelism`` slots, its default pod starts)."""
    options = spec.backend.simulated
    if spec.backend.type != "simulated":  # the cluster the spec asks for, as far as it tells
        devices = cost.devices(spec.trainer.resources.gpus)
        options = options.model_copy(
            update={
                "gpus": spec.parallelism * devices,
                "seconds_per_epoch": spec.trials.seconds_per_epoch,
                # each rung's epochs at its device class's speed (cost.classes)
                "rung_seconds_per_epoch": [
                    spec.price_class(r)[2] for r in range(len(spec.budgets()))
                ],
            }
        )
    sim_spec = spec.model_copy(
        update={"backend": spec.backend.model_copy(update={"type": "simulated"})}
    )
    store = MemoryStore("estimate")
    backend = SimulatedBackend(
        spec.name,
        store,
        options,
        objective=SyntheticObjective(spec.budget.max),
        budget_unit=spec.budget.unit,
    )
    outcome = run_sweep(sim_spec, sim_spec.model_dump_json(), store=store, backend=backend)
    state = outcome.state
    start = state.started_at
    ends = [t.ended_at for t in state.trials.values() if t.ended_at is not None]
    top = [
        t.ended_at
        for t in state.trials.values()
        if t.state == "SUCCEEDED" and t.ended_at is not None and t.budget >= spec.budget.max
    ]
    hours: dict[str, float] = {}
    money: dict[str, float] = {}
    for t in state.trials.values():
        name, price, _ = spec.price_class(t.rung)
        hours[name] = hours.get(name, 0.0) + t.gpu_seconds / 3600
        money[name] = money.get(name, 0.0) + cost.money(t.gpu_seconds, price)
    return Simulated(
        trials=len(state.trials),
        gpu_hours=state.gpu_seconds / 3600,
        cost=state.cost,
        gpu_hours_by_class=hours,
        cost_by_class=money,
        wall_clock_s=_seconds(start, max(ends, default=start)),
        stop_reason=outcome.reason,
        first_max_budget_result_s=_seconds(start, min(top)) if top else None,
    )


def _seconds(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


def estimate(spec: SweepSpec, *, run_simulation: bool = True) -> Estimate:
    rows, open_ended = schedule(spec)
    stop = spec.stop
    caps = cost.Caps(stop.max_gpu_hours, stop.max_cost, stop.gpu_hour_price)
    nominal = sum(r.gpu_hours_nominal for r in rows)
    worst = sum(r.gpu_hours_worst for r in rows)
    warnings = []
    first = [r for r in rows if r.bracket == 0]
    first_bracket = cost.Spend(
        sum(r.gpu_hours_nominal for r in first) * 3600, sum(r.cost_nominal for r in first)
    )
    room = caps.left(cost.Spend())
    short = first_bracket.short_of(room)
    if short is not None:
        then = (
            "the first bracket is cut down to fit (stop.wind_down)"
            if stop.wind_down
            else "the sweep stops before its first result on the largest budget "
            f"({spec.budget.max:g} {spec.budget.unit})"
        )
        if short == "max_gpu_hours":
            what = f"{room.device_s / 3600:,.1f} device-hours"
            need = f"{first_bracket.device_s / 3600:,.1f}"
        else:
            what, need = f"{room.money:,.2f} in money", f"{first_bracket.money:,.2f}"
        warnings.append(f"{short} ({what}) is less than the first bracket's {need}: {then}")
    sim = simulate(spec) if run_simulation else None
    if sim is not None and sim.first_max_budget_result_s is None and not warnings:
        warnings.append(
            f"simulated: stopped by {sim.stop_reason} before any result on the largest budget "
            f"({spec.budget.max:g} {spec.budget.unit})"
        )
    return Estimate(
        sweep=spec.name,
        budget_unit=spec.budget.unit,
        brackets=len({r.bracket for r in rows}),
        open_ended=open_ended,
        trials=sum(r.trials for r in rows),
        gpu_hours_nominal=nominal,
        gpu_hours_worst=worst,
        gpu_hour_price=stop.gpu_hour_price,
        cost_nominal=sum(r.cost_nominal for r in rows),
        cost_worst=sum(r.cost_worst for r in rows),
        by_class=_by_class(spec, rows),
        rungs=rows,
        cap=caps.short(cost.Spend(nominal * 3600, sum(r.cost_nominal for r in rows)))
        or caps.binding(),
        cap_gpu_hours=stop.max_gpu_hours,
        cap_cost=stop.max_cost,
        simulated=sim,
        warnings=warnings,
    )


def _by_class(spec: SweepSpec, rows: list[RungRow]) -> dict[str, ClassCost]:
    out: dict[str, ClassCost] = {}
    for r in rows:
        c = out.get(r.price_class)
        if c is None:
            klass = spec.cost.classes.get(r.price_class)
            price = spec.price_class(r.rung)[1]
            c = ClassCost(
                price=price,
                spot=bool(klass and klass.spot),
                rungs=[],
                gpu_hours_nominal=0.0,
                gpu_hours_worst=0.0,
                cost_nominal=0.0,
                cost_worst=0.0,
            )
        out[r.price_class] = c.model_copy(
            update={
                "rungs": sorted({*c.rungs, r.rung}),
                "gpu_hours_nominal": c.gpu_hours_nominal + r.gpu_hours_nominal,
                "gpu_hours_worst": c.gpu_hours_worst + r.gpu_hours_worst,
                "cost_nominal": c.cost_nominal + r.cost_nominal,
                "cost_worst": c.cost_worst + r.cost_worst,
            }
        )
    return out


def table(e: Estimate) -> str:
    """The schedule by rung over all brackets, then by device class, as plain text."""
    by_rung: dict[int, list[RungRow]] = {}
    for r in e.rungs:
        by_rung.setdefault(r.rung, []).append(r)
    lines = [
        f"{'rung':>4} {'budget':>10} {'class':>10} {'trials':>7} {'device-h nominal':>17} "
        f"{'worst':>9} {'money nominal':>14} {'worst':>9}"
    ]
    for rung in sorted(by_rung):
        rs = by_rung[rung]
        budget = f"{rs[0].budget:g} {e.budget_unit[:1]}"
        lines.append(
            f"{rung:>4} {budget:>10} {rs[0].price_class:>10} {sum(r.trials for r in rs):>7} "
            f"{sum(r.gpu_hours_nominal for r in rs):>17,.1f} "
            f"{sum(r.gpu_hours_worst for r in rs):>9,.1f} "
            f"{sum(r.cost_nominal for r in rs):>14,.2f} {sum(r.cost_worst for r in rs):>9,.2f}"
        )
    for name, c in e.by_class.items():
        lines.append(
            f"class {name}{' (spot)' if c.spot else ''}: {c.price:g} a device-hour, rungs "
            f"{c.rungs}: {c.gpu_hours_nominal:,.1f} device-hours nominal, "
            f"{c.cost_nominal:,.2f} in money (worst {c.cost_worst:,.2f})"
        )
    if e.cap_gpu_hours is not None:
        lines.append(f"cap: max_gpu_hours = {e.cap_gpu_hours:,.1f} device-hours")
    if e.cap_cost is not None:
        lines.append(f"cap: max_cost = {e.cap_cost:,.2f}")
    return "\n".join(lines)
