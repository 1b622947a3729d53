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

import math
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
    trials: int
    gpu_hours_nominal: float
    gpu_hours_worst: float


class Simulated(_Out):
    """The sweep run on the simulator: what it ran, spent and took."""

    trials: int
    gpu_hours: float
    cost: float
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
    rungs: list[RungRow]
    cap: str | None  # the binding cap, if any: max_gpu_hours or max_cost
    cap_gpu_hours: float | None
    simulated: Simulated | None
    warnings: list[str]

    def summary(self) -> str:
        """One line: trials, device-hours nominal/worst, money, and the simulated outcome."""
        money = ""
        if self.gpu_hour_price > 0:
            money = f", {self.cost_nominal:,.0f} (worst {self.cost_worst:,.0f}) at the price"
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


def _trial_hours(spec: SweepSpec, budget: float) -> tuple[float, float]:
    """(nominal, worst) device-hours of one trial at ``budget``."""
    seconds = budget if spec.budget.unit == "seconds" else budget * spec.trials.seconds_per_epoch
    devices = cost.devices(spec.trainer.resources.gpus)
    return seconds * devices / 3600, spec.deadline_s(budget) * devices / 3600


def schedule(spec: SweepSpec) -> tuple[list[RungRow], bool]:
    """The rungs of every bracket BOHB opens, and whether the sweep is open-ended (then listed
    where a cap or max_trials would stop it, as far as nominal costs tell, or else for one
    cycle of brackets)."""
    sched = Schedule(spec.budget.min, spec.budget.max, spec.budget.eta)
    stop = spec.stop
    limit = cost.Caps(stop.max_gpu_hours, stop.max_cost, stop.gpu_hour_price).limit_s()
    open_ended = stop.max_iterations is None
    bounded = limit is not None or stop.max_trials is not None
    # a cap's bracket count is unknown beforehand: enough cycles to reach any cap that binds
    n_brackets = stop.max_iterations or (10_000 if bounded else sched.max_sh_iter)
    rows: list[RungRow] = []
    trials, hours = 0, 0.0
    for i in range(n_brackets):
        b = sched.bracket(i)
        for stage, (n, budget) in enumerate(zip(b.num_configs, b.budgets, strict=True)):
            nominal, worst = _trial_hours(spec, budget)
            rows.append(
                RungRow(
                    bracket=i,
                    rung=b.first_rung + stage,
                    budget=budget,
                    trials=n,
                    gpu_hours_nominal=n * nominal,
                    gpu_hours_worst=n * worst,
                )
            )
            trials += n
            hours += n * nominal
        if stop.max_trials is not None and trials >= stop.max_trials:
            break
        if open_ended and limit is not None and hours * 3600 >= limit:
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
    return Simulated(
        trials=len(state.trials),
        gpu_hours=state.gpu_seconds / 3600,
        cost=state.cost,
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
    limit_s = caps.limit_s()
    nominal = sum(r.gpu_hours_nominal for r in rows)
    worst = sum(r.gpu_hours_worst for r in rows)
    warnings = []
    first_bracket = sum(r.gpu_hours_nominal for r in rows if r.bracket == 0)
    if limit_s is not None and limit_s / 3600 < first_bracket:
        then = (
            "the first bracket is cut down to fit (stop.wind_down)"
            if stop.wind_down
            else "the sweep stops before its first result on the largest budget "
            f"({spec.budget.max:g} {spec.budget.unit})"
        )
        warnings.append(
            f"{caps.binding()} ({limit_s / 3600:,.1f} device-hours) is less than the first "
            f"bracket's {first_bracket:,.1f}: {then}"
        )
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
        cost_nominal=cost.money(nominal * 3600, stop.gpu_hour_price),
        cost_worst=cost.money(worst * 3600, stop.gpu_hour_price),
        rungs=rows,
        cap=caps.binding(),
        cap_gpu_hours=None if limit_s is None else limit_s / 3600,
        simulated=sim,
        warnings=warnings,
    )


def table(e: Estimate) -> str:
    """The schedule by rung over all brackets, as plain text."""
    by_rung: dict[int, list[RungRow]] = {}
    for r in e.rungs:
        by_rung.setdefault(r.rung, []).append(r)
    lines = [f"{'rung':>4} {'budget':>10} {'trials':>7} {'device-h nominal':>17} {'worst':>9}"]
    for rung in sorted(by_rung):
        rs = by_rung[rung]
        nominal = sum(r.gpu_hours_nominal for r in rs)
        worst = sum(r.gpu_hours_worst for r in rs)
        budget = f"{rs[0].budget:g} {e.budget_unit[:1]}"
        lines.append(
            f"{rung:>4} {budget:>10} {sum(r.trials for r in rs):>7} {nominal:>17,.1f} "
            f"{worst:>9,.1f}"
        )
    if e.cap_gpu_hours is not None and not math.isinf(e.cap_gpu_hours):
        lines.append(f"cap: {e.cap} = {e.cap_gpu_hours:,.1f} device-hours")
    return "\n".join(lines)
