"""Winding a sweep down at a cap (``stop.wind_down``): decisions on the sweep's state and BOHB's,
no store or backend calls; the scheduler asks before every launch (docs/bohb.md, "Winding down
at a cap")."""

from __future__ import annotations

from controller import log
from controller.bohb import Optimizer
from controller.sweep import cost
from controller.sweep.spec import SweepSpec
from controller.sweep.state import StopReason, SweepState


class WindDown:
    def __init__(
        self, spec: SweepSpec, state: SweepState, bohb: Optimizer, caps: cost.Caps
    ) -> None:
        self.spec, self.state, self.bohb, self.caps = spec, state, bohb, caps
        self.prices = spec.rung_prices()
        # a cap stopped BOHB opening brackets (recomputed after a restart: it depends on the
        # state alone, and the first check decides it before any ask)
        self.brackets_capped = False
        self.capped_by: StopReason | None = None  # the cap that capped brackets or wound down

    def check(self, running: list[cost.Running]) -> bool:
        """Near a cap, stop spending on starts the cap cannot finish (``stop.wind_down``).

        What is left of each cap is compared with the nominal cost (training seconds x devices,
        and that at each rung's price) of the trials the open brackets will still hand out, and
        of the next bracket. Short of both: no further bracket opens (BOHB's iteration limit is
        set to the brackets open now). Short of the open brackets' alone: BOHB also starts no
        new config in them beyond what is left pays for (``wind_down``) and spends the rest
        promoting their best to the largest budget. So a capped sweep still ends with a
        max-budget incumbent where the cap allows one, instead of many brackets cut off at their
        lower rungs. The first bracket always opens; a cap below it shrinks it once it is open.
        Whether BOHB was wound down now (a change the journal must record)."""
        nxt = self.bohb.next_bracket()
        if not self.caps.any() or not self.spec.stop.wind_down or self.bohb.wound_down:
            return False
        if nxt.iteration == 0:
            return False
        left = self.caps.left(self._spoken_for(running))
        open_ = self._nominal(self.bohb.outstanding())
        limit_it = self.spec.stop.max_iterations
        if not self.brackets_capped and (limit_it is None or nxt.iteration < limit_it):
            next_ = self._nominal(
                dict(zip(nxt.budgets, nxt.num_configs, strict=True)), nxt.first_rung
            )
            short = (open_ + next_).short_of(left)
            if short is not None:
                self.brackets_capped, self.capped_by = True, short
                self.bohb.max_iterations = nxt.iteration  # no bracket after the open ones
                log.event(
                    "sweep.brackets_capped",
                    brackets=nxt.iteration,
                    left_gpu_hours=round(left.device_s / 3600, 3),
                    left_cost=round(left.money, 3),
                    needed_gpu_hours=round((open_ + next_).device_s / 3600, 3),
                    needed_cost=round((open_ + next_).money, 3),
                )
        short = open_.short_of(left)
        if short is None:
            return False
        self.capped_by = short
        self.bohb.wind_down(lambda trials: self._nominal(trials).fits_in(left))
        log.event(
            "sweep.wind_down",
            left_gpu_hours=round(left.device_s / 3600, 3),
            left_cost=round(left.money, 3),
            needed_gpu_hours=round(open_.device_s / 3600, 3),
            needed_cost=round(open_.money, 3),
        )
        return True

    def _spoken_for(self, running: list[cost.Running]) -> cost.Spend:
        """What of the caps is already spoken for: spent, what running attempts will still
        train (nominally), and what the last launch at the largest budget reserves beyond its
        nominal cost (a launch must fit its whole reservation)."""
        spec, caps, devices = self.spec, self.caps, cost.devices(self.spec.trainer.resources.gpus)
        allowance = spec.trials.startup_allowance_s
        total = cost.accounted_spend(caps, self.state.gpu_seconds, running, self.state.cost)
        for r in running:
            left_s = cost.reservation(r.reserve_s, r.deadline_s) - allowance - r.elapsed_s
            to_go = max(0.0, left_s) * cost.devices(r.gpus)
            total += cost.Spend(to_go, cost.money(to_go, caps.price(r)))
        top = spec.budget.max
        top_price = self.prices[-1]
        slack = max(0.0, spec.reserve_s(top) * devices - self._nominal({top: 1}).device_s)
        return total + cost.Spend(slack, cost.money(slack, top_price))

    def _nominal(self, trials: dict[float, int], first_rung: int | None = None) -> cost.Spend:
        """Training device-seconds of ``trials`` (budget -> count) and their money at each
        rung's price, as `kubohb estimate` counts them. With ``first_rung`` they are one
        bracket's stages (with ``bohb.promotion_resume`` its promotions train the increment
        only); without, counted from scratch: the open brackets' trials to come, whose budget
        alone does not tell a promotion from a later bracket's new config (an upper bound)."""
        spec, devices = self.spec, cost.devices(self.spec.trainer.resources.gpus)
        total = cost.Spend()
        for budget, n in trials.items():
            rung = spec.rung_of(budget)
            start = 0.0 if first_rung is None else spec.continued_from(rung, first_rung)
            device_s = n * spec.train_seconds(budget, start) * devices
            total += cost.Spend(device_s, cost.money(device_s, self.prices[spec.rung_of(budget)]))
        return total
