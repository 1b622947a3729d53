"""BOHB as a pure ask/tell object: HpBandSter 0.7.4's master loop, iterations and KDE sampler.

Each ``ask()`` behaves like HpBandSter's master handing one job to one idle worker (spec §3): the
oldest active iteration that can emit a run does; when none can, a new iteration is opened (up to
``max_iterations``); ``None`` means nothing can start until a result is told (never the case with
``max_iterations=None``: a new iteration can always emit). Configs are sampled lazily at ask time,
so the model is as current as it can be.

``promotion`` picks the iterations' successive halving: ``"sync"`` (the default) is HpBandSter's
``SHIteration`` (``iteration.py``), whose promotions wait for a whole stage; ``"async"`` is
``AsyncSHIteration`` (``asha.py``), the ASHA rule inside each bracket, which promotes as soon as a
config ranks in the top 1/eta of the results in so far (docs/bohb.md). Brackets, budgets and the
per-budget KDE are the same in both modes.

All randomness comes from one ``np.random.Generator`` owned by the object and saved in
``state_dict()``: the same seed and the same sequence of asks and tells give the same
suggestions, also across a JSON round trip of the state at any point.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Literal, Protocol, get_args

import numpy as np

from controller.bohb.asha import AsyncSHIteration
from controller.bohb.hyperband import Bracket, Schedule
from controller.bohb.iteration import REVIEW, ConfigRun, Sampler, SHIteration, wound_down
from controller.bohb.model import (
    DEFAULT_MAX_MODEL_POINTS,
    MODEL_NAMES,
    ConfigGenerator,
    ModelKnobs,
    ModelName,
    model_defaults,
)
from controller.bohb.protocol import Incumbent, Suggestion, trial_id_of
from controller.bohb.space import SearchSpace

log = logging.getLogger("kubohb.bohb")

STATE_VERSION = 1

Promotion = Literal["sync", "async"]
PROMOTIONS: tuple[str, ...] = get_args(Promotion)


class Iteration(Protocol):
    """What the optimiser needs of one bracket's successive halving (sync or async)."""

    @property
    def bracket(self) -> Bracket: ...
    @property
    def stage(self) -> int: ...
    @property
    def last_stage(self) -> int: ...
    @property
    def actual(self) -> list[int]: ...
    @property
    def sizes(self) -> list[int]: ...
    @property
    def runs(self) -> list[ConfigRun]: ...
    @property
    def is_finished(self) -> bool: ...
    @property
    def complete(self) -> bool: ...

    def next_run(self, sample: Sampler) -> ConfigRun | None: ...

    def register(self, index: int, loss: float | None) -> None: ...

    def resize(self, sizes: list[int]) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def state_dict(self) -> dict[str, Any]: ...


def _to_hand_out(bracket: Bracket, sizes: list[int], actual: list[int]) -> dict[float, int]:
    """Trials an iteration of these stage sizes will still hand out, by budget."""
    return {
        b: n - placed
        for n, placed, b in zip(sizes, actual, bracket.budgets, strict=True)
        if n > placed
    }


def _plus(a: dict[float, int], b: dict[float, int]) -> dict[float, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


class UnknownTrial(KeyError):  # noqa: N818 - name fixed by the design's API
    """``tell`` got a trial id this optimiser never suggested."""

    def __str__(self) -> str:
        return str(self.args[0])


class AlreadyTold(ValueError):  # noqa: N818 - name fixed by the design's API
    """``tell`` got a trial id whose result was already told."""


class BOHB:
    def __init__(
        self,
        space: SearchSpace,
        min_budget: float,
        max_budget: float,
        eta: float = 3,
        seed: int = 0,
        *,
        max_iterations: int | None = None,
        min_points_in_model: int | None = None,
        top_n_percent: int = 15,
        num_samples: int | None = None,  # None, here and below: the model's (model_defaults)
        random_fraction: float | None = None,
        bandwidth_factor: float | None = None,
        min_bandwidth: float = 1e-3,
        faithful_kde: bool = False,
        all_budgets: bool = False,  # ModelKnobs; measured, not a model's default
        marginal: bool | None = None,
        promotion: Promotion = "sync",
        max_model_points: int | None = DEFAULT_MAX_MODEL_POINTS,  # ModelKnobs; None = HpBandSter
        model: ModelName = "faithful",
    ) -> None:
        self.space = space
        if model not in MODEL_NAMES:
            raise ValueError(f"model ({model!r}) must be one of {', '.join(MODEL_NAMES)}")
        self.model: ModelName = model
        defaults = model_defaults(model, space)
        num_samples = defaults.num_samples if num_samples is None else num_samples
        random_fraction = defaults.random_fraction if random_fraction is None else random_fraction
        if bandwidth_factor is None:
            bandwidth_factor = defaults.bandwidth_factor
        marginal = defaults.marginal if marginal is None else marginal
        if promotion not in PROMOTIONS:
            raise ValueError(f"promotion ({promotion!r}) must be 'sync' or 'async'")
        self.promotion: Promotion = promotion
        self.schedule = Schedule(min_budget, max_budget, eta)
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations ({max_iterations}) must be >= 1 or None")
        if not 0 < top_n_percent < 100:
            raise ValueError(f"top_n_percent ({top_n_percent}) must be in (0, 100)")
        if num_samples < 1:
            raise ValueError(f"num_samples ({num_samples}) must be >= 1")
        if not 0 <= random_fraction <= 1:
            raise ValueError(f"random_fraction ({random_fraction}) must be in [0, 1]")
        if bandwidth_factor <= 0 or min_bandwidth <= 0:
            raise ValueError("bandwidth_factor and min_bandwidth must be > 0")
        n_min = space.dim + 1
        if min_points_in_model is not None and min_points_in_model < n_min:
            # HpBandSter forces this too: a KDE needs more points than dimensions.
            fields = {"given": min_points_in_model, "used": n_min}
            log.warning("bohb.min_points_in_model_raised", extra={"fields": fields})
        n_model = max(min_points_in_model or n_min, n_min)
        if max_model_points is not None and max_model_points < 2 * n_model:
            # Each KDE of a bounded model keeps at least min_points_in_model rows.
            fields = {"given": max_model_points, "used": 2 * n_model}
            log.warning("bohb.max_model_points_raised", extra={"fields": fields})
            max_model_points = 2 * n_model
        self.min_budget, self.max_budget, self.eta, self.seed = min_budget, max_budget, eta, seed
        self.max_iterations = max_iterations
        self.knobs = ModelKnobs(
            min_points_in_model=n_model,
            top_n_percent=int(top_n_percent),
            num_samples=int(num_samples),
            random_fraction=float(random_fraction),
            bandwidth_factor=float(bandwidth_factor),
            min_bandwidth=float(min_bandwidth),
            faithful_kde=faithful_kde,
            all_budgets=bool(all_budgets),
            marginal=bool(marginal),
            max_model_points=None if max_model_points is None else int(max_model_points),
        )
        self.budgets: list[float] = self.schedule.budgets
        self._rng = np.random.default_rng(seed)
        self._gen = ConfigGenerator(space, len(self.budgets), self.knobs, seed)
        self._iterations: list[Iteration] = []
        # indices of the iterations not finished, oldest first: ask() scans these, not all
        self._active: list[int] = []
        self._trials: dict[str, tuple[int, int, int]] = {}  # trial id -> (iteration, index, rung)
        self._pending: dict[str, None] = {}  # asked, not told; insertion order = ask order
        self._best: dict[int, dict[str, Any]] = {}  # rung -> best finite result there
        self._ops: list[dict[str, Any]] = []  # asks and tells since the last take_ops()
        self._settled = False  # the last ask or tell was an ask that handed out nothing
        self._replayed: tuple[dict[str, Any], bool] | None = None  # a logged sample, in replay
        self._wound_down = False  # wind_down(): no new config, no new iteration

    # ---- ask / tell ----------------------------------------------------------------------------
    def ask(self) -> Suggestion | None:
        suggestion = self._ask()
        if suggestion is not None:
            self._ops.append(
                {
                    "ask": suggestion.trial_id,
                    "max": self.max_iterations,
                    "config": suggestion.config,
                    "model_based": suggestion.model_based,
                    "rng": self._rng.bit_generator.state,
                }
            )
        elif not self._settled:
            # An ask that hands out nothing may still do bookkeeping (a finished stage promoted
            # or closed), so it is logged; a second one with no tell in between changes nothing
            # and is not (a finished sweep run again logs, and writes, nothing).
            self._ops.append({"ask": None, "max": self.max_iterations})
        self._settled = suggestion is None
        return suggestion

    def _ask(self) -> Suggestion | None:
        while True:
            for i in list(self._active):
                it = self._iterations[i]
                run = it.next_run(self._sample)
                if it.is_finished:
                    self._active.remove(i)
                if run is not None:
                    return self._suggest(it, run.index, run.stage)
            if self._wound_down:
                return None
            if self.max_iterations is not None and len(self._iterations) >= self.max_iterations:
                return None
            # No active iteration can emit: open the next one (it always can).
            self._active.append(len(self._iterations))
            self._iterations.append(self._new_iteration(len(self._iterations), None))

    def next_bracket(self) -> Bracket:
        return self.schedule.bracket(len(self._iterations))

    def outstanding(self) -> dict[float, int]:
        out: dict[float, int] = {}
        for i in self._active:
            it = self._iterations[i]
            out = _plus(out, _to_hand_out(it.bracket, it.sizes, it.actual))
        return out

    @property
    def wound_down(self) -> bool:
        return self._wound_down

    def wind_down(self, fits: Callable[[dict[float, int]], bool] | None = None) -> None:
        """No new iteration from now on, and each open one shrunk to finish with the configs it
        started, its best promoted up to the largest budget (``iteration.wound_down``). With
        ``fits`` (whether trials still to hand out, budget -> count, are affordable), an open
        iteration still sampling its first stage keeps the most first-stage configs that fit
        beside the older ones. Logged as an op with the sizes, so a replay winds down alike."""
        if self._wound_down:
            return
        planned: dict[str, list[int]] = {}
        need: dict[float, int] = {}
        for i in self._active:
            it = self._iterations[i]
            sizes = wound_down(it.sizes, it.actual)
            if fits is not None:
                for start in range(it.sizes[0], it.actual[0], -1):
                    bigger = wound_down(it.sizes, it.actual, start)
                    if fits(_plus(need, _to_hand_out(it.bracket, bigger, it.actual))):
                        sizes = bigger
                        break
            need = _plus(need, _to_hand_out(it.bracket, sizes, it.actual))
            planned[str(i)] = sizes
        self._apply_wind_down(planned)
        self._ops.append({"wind_down": planned})
        self._settled = False

    def _apply_wind_down(self, planned: dict[str, list[int]]) -> None:
        self._wound_down = True
        for i, sizes in planned.items():
            self._iterations[int(i)].resize(sizes)

    def _sample(self) -> tuple[dict[str, Any], bool]:
        if self._replayed is not None:  # replaying a logged ask: its config, no model, no rng
            sample, self._replayed = self._replayed, None
            return sample
        return self._gen.propose(self._rng)

    def _new_iteration(self, iteration: int, state: dict[str, Any] | None) -> Iteration:
        """Iteration ``iteration`` of the promotion mode: new, or restored from ``state``."""
        bracket = self.schedule.bracket(iteration)
        if self.promotion == "async":
            if state is None:
                return AsyncSHIteration(bracket, float(self.eta))
            return AsyncSHIteration.from_state_dict(bracket, state)
        if state is None:
            return SHIteration(bracket)
        return SHIteration.from_state_dict(bracket, state)

    def _suggest(self, it: Iteration, index: int, stage: int) -> Suggestion:
        b = it.bracket
        rung = b.first_rung + stage
        run = it.runs[index]
        config_id = f"it{b.iteration}-c{index}"
        trial_id = trial_id_of(config_id, rung)
        self._trials[trial_id] = (b.iteration, index, rung)
        self._pending[trial_id] = None
        return Suggestion(
            trial_id=trial_id,
            config_id=config_id,
            config=dict(run.config),
            budget=self.budgets[rung],
            rung=rung,
            iteration=b.iteration,
            model_based=run.model_based,
        )

    def tell(self, trial_id: str, loss: float | None) -> None:
        """Report a result; None, NaN or +-inf mean the run failed (never promoted)."""
        self._tell(trial_id, loss)  # validates loss: None or a number from here on
        value = float(loss) if loss is not None and math.isfinite(loss) else None
        self._ops.append({"tell": trial_id, "loss": value})
        self._settled = False

    def _tell(self, trial_id: str, loss: float | None) -> None:
        if trial_id not in self._trials:
            raise UnknownTrial(f"trial {trial_id!r} was never suggested by this optimiser")
        if trial_id not in self._pending:
            raise AlreadyTold(f"trial {trial_id!r} was already told; each trial reports once")
        if loss is not None and (isinstance(loss, bool) or not isinstance(loss, int | float)):
            raise TypeError(f"loss of trial {trial_id!r} must be a number or None, got {loss!r}")
        iteration, index, rung = self._trials[trial_id]
        del self._pending[trial_id]
        it = self._iterations[iteration]
        value = float(loss) if loss is not None and math.isfinite(loss) else None
        it.register(index, value)
        config = it.runs[index].config
        self._gen.observe(rung, self.space.encode(config), math.inf if value is None else value)
        best = self._best.get(rung)
        if value is not None and (best is None or value < best["loss"]):
            self._best[rung] = {
                "config": dict(config),
                "config_id": f"it{iteration}-c{index}",
                "trial_id": trial_id,
                "budget": self.budgets[rung],
                "loss": value,
            }

    def warm_start(self, results: list[tuple[dict[str, Any], float, float]]) -> int:
        """Seed the per-budget models with earlier results, (config, budget, loss), before the
        first ask (HpBandSter's ``previous_result``): they count for the model's
        ``min_points_in_model`` and its good/bad split like this sweep's own results, never for
        the brackets, promotions or the incumbent. A budget must be one of this schedule's
        (within 1e-9, relative); each config is validated against the space. Returns how many
        were used (without ``all_budgets``, results below the largest budget that has a model
        are dropped, as for told ones)."""
        if self._trials:
            raise RuntimeError("warm_start: the optimiser has handed out trials already")
        used = 0
        # smallest budgets first: a model at a larger budget would drop the ones below it
        for config, budget, loss in sorted(results, key=lambda r: r[1]):
            rung = next(
                (r for r, b in enumerate(self.budgets) if math.isclose(b, budget, rel_tol=1e-9)),
                None,
            )
            if rung is None:
                raise ValueError(f"warm_start: budget {budget:g} is not one of {self.budgets}")
            if not math.isfinite(loss):
                raise ValueError(f"warm_start: loss {loss} of a result must be finite")
            vector = self.space.encode(self.space.validate_config(config))
            used += self._gen.observe(rung, vector, float(loss))
        return used

    # ---- the log of asks and tells (a journal's record of the optimiser) -----------------------
    def take_ops(self) -> list[dict[str, Any]]:
        """The asks and tells since the last call, in order, JSON-able; the log is emptied.

        A log replayed on the state the optimiser had before it (``replay``) gives the same
        state: each ask that handed out a trial carries its trial id, config and model flag, the
        iteration limit it ran under, and the generator's state after it."""
        ops, self._ops = self._ops, []
        return ops

    def replay(self, ops: list[dict[str, Any]]) -> None:
        """Apply a log of ``take_ops`` to this state, without sampling or fitting anything: each
        ask runs the same successive-halving logic with its logged config. Raises ValueError when
        the log does not fit this state (another sweep's, or a damaged journal)."""
        limit = self.max_iterations
        try:
            for n, op in enumerate(ops):
                if "tell" in op:
                    self._tell(op["tell"], op["loss"])
                    self._settled = False
                    continue
                if "wind_down" in op:
                    self._apply_wind_down(op["wind_down"])
                    self._settled = False
                    continue
                self.max_iterations = op["max"]
                if op["ask"] is not None:
                    self._replayed = (dict(op["config"]), bool(op["model_based"]))
                got = self._ask()
                self._replayed = None
                if (got.trial_id if got else None) != op["ask"]:
                    raise ValueError(
                        f"replay of the optimiser's log diverged at op {n}: it handed out "
                        f"{got.trial_id if got else None!r} where the log says {op['ask']!r}"
                    )
                if got is not None:
                    self._rng.bit_generator.state = op["rng"]
                self._settled = got is None
        finally:
            self.max_iterations = limit
            self._replayed = None

    # ---- views ---------------------------------------------------------------------------------
    def promotable(self, trial_id: str) -> bool:
        where = self._trials.get(trial_id)
        if where is None or trial_id in self._pending:
            return False
        iteration, index, rung = where
        it = self._iterations[iteration]
        run, stage = it.runs[index], rung - it.bracket.first_rung
        # REVIEW: told with a finite loss, neither promoted (its stage would be higher) nor
        # terminated yet
        return (
            not it.is_finished
            and stage < it.last_stage
            and run.stage == stage
            and run.status == REVIEW
        )

    def pending(self) -> list[str]:
        return list(self._pending)

    @property
    def finished(self) -> bool:
        if not self._wound_down and (
            self.max_iterations is None or len(self._iterations) < self.max_iterations
        ):
            return False
        return all(it.complete for it in self._iterations)

    def incumbent(self) -> Incumbent | None:
        """Best loss at the largest budget that has a finite result."""
        if not self._best:
            return None
        return Incumbent(**self._best[max(self._best)])

    def summary(self) -> dict[str, Any]:
        iterations = [
            {
                "iteration": it.bracket.iteration,
                "s": it.bracket.s,
                "stage": min(it.stage, it.last_stage),
                "num_configs": list(it.bracket.num_configs),
                "budgets": list(it.bracket.budgets),
                "sampled": list(it.actual),
                "finished": it.complete,
                "states": it.counts(),
            }
            for it in self._iterations
        ]
        model_rung = self._gen.model_rung()
        return {
            "budgets": list(self.budgets),
            "iterations": iterations,
            "active_iterations": sum(not it.complete for it in self._iterations),
            "trials": len(self._trials),
            "pending": len(self._pending),
            "observations": [o.n for o in self._gen.obs],
            "model_budget": None if model_rung is None else self.budgets[model_rung],
            "finished": self.finished,
        }

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        k = self.knobs
        return {
            "version": STATE_VERSION,
            "space": self.space.model_dump(mode="json"),
            "args": {
                "min_budget": self.min_budget,
                "max_budget": self.max_budget,
                "eta": self.eta,
                "seed": self.seed,
                "max_iterations": self.max_iterations,
                "min_points_in_model": k.min_points_in_model,
                "top_n_percent": k.top_n_percent,
                "num_samples": k.num_samples,
                "random_fraction": k.random_fraction,
                "bandwidth_factor": k.bandwidth_factor,
                "min_bandwidth": k.min_bandwidth,
                "faithful_kde": k.faithful_kde,
                "all_budgets": k.all_budgets,
                "marginal": k.marginal,
                "promotion": self.promotion,
                "max_model_points": k.max_model_points,
                "model": self.model,
            },
            "rng": self._rng.bit_generator.state,
            "iterations": [it.state_dict() for it in self._iterations],
            "settled": self._settled,
            **({"wound_down": True} if self._wound_down else {}),
            "trials": {t: list(v) for t, v in self._trials.items()},
            "pending": list(self._pending),
            "best": {str(r): b for r, b in self._best.items()},
            "observations": self._gen.state_dict(),
        }

    @staticmethod
    def state_args(state: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments a state was written with; those an older state lacks are
        what it ran with: no "promotion", the sync optimiser (the default); no
        "max_model_points", an unbounded model; no "model", HpBandSter's (its knobs are all in
        the state anyway); no "all_budgets" or "marginal", neither."""
        older = {
            "promotion": "sync",
            "max_model_points": None,
            "model": "faithful",
            "all_budgets": False,
            "marginal": False,
        }
        return {**older, **state.get("args", {})}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> BOHB:
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"BOHB state version {state.get('version')!r} is not {STATE_VERSION}; "
                "it was written by another kubohb version"
            )
        opt = cls(SearchSpace.model_validate(state["space"]), **cls.state_args(state))
        opt._rng.bit_generator.state = state["rng"]
        opt._iterations = [opt._new_iteration(i, s) for i, s in enumerate(state["iterations"])]
        opt._active = [i for i, it in enumerate(opt._iterations) if not it.is_finished]
        opt._settled = bool(state.get("settled", False))  # absent before the journal existed
        opt._wound_down = bool(state.get("wound_down", False))  # absent: never wound down
        opt._trials = {t: (v[0], v[1], v[2]) for t, v in state["trials"].items()}
        opt._pending = dict.fromkeys(state["pending"])
        opt._best = {int(r): dict(b) for r, b in state["best"].items()}
        opt._gen.load_state_dict(state["observations"])
        return opt
