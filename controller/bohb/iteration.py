"""One successive-halving iteration, as HpBandSter's ``BaseIteration`` + ``SuccessiveHalving``
(spec §1.5): lazy sampling, rank-based promotion, crashed configs excluded and back-filled."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controller.bohb.hyperband import Bracket

QUEUED, RUNNING, REVIEW, CRASHED, TERMINATED, COMPLETED = (
    "queued",
    "running",
    "review",
    "crashed",
    "terminated",
    "completed",
)
STATES = (QUEUED, RUNNING, REVIEW, CRASHED, TERMINATED, COMPLETED)

Sampler = Callable[[], tuple[dict[str, Any], bool]]  # -> (config, model_based)


def wound_down(sizes: list[int], actual: list[int], start: int | None = None) -> list[int]:
    """Stage sizes once no new config may start (``BOHB.wind_down``): stage 0 keeps the configs
    already sampled (or ``start`` of them, if more and at most the bracket's); each later stage
    keeps the bracket's ratio to the stage below (at least one config while the stage below has
    one), never fewer than were promoted there already, so the bracket still carries its best
    config to the largest budget."""
    out = [actual[0] if start is None else max(actual[0], min(start, sizes[0]))]
    for k in range(1, len(sizes)):
        kept = math.floor(out[k - 1] * sizes[k] / sizes[k - 1]) if sizes[k - 1] else 0
        out.append(max(actual[k], min(sizes[k], max(int(out[k - 1] > 0), kept))))
    return out


@dataclass(slots=True)  # one per config of the sweep: slots halve its memory
class ConfigRun:
    """A config within an iteration; ``stage`` is the stage it is queued/running/reviewed at."""

    index: int
    config: dict[str, Any]
    model_based: bool
    stage: int
    status: str = QUEUED
    losses: dict[str, float | None] = field(
        default_factory=dict
    )  # str(stage) -> loss (None = failed)

    def state_dict(self) -> dict[str, Any]:
        # What dataclasses.asdict gives, without its recursive deepcopy: config and losses hold
        # scalars only, and asdict was most of the controller's CPU time at ~1,500 trials.
        return {
            "index": self.index,
            "config": dict(self.config),
            "model_based": self.model_based,
            "stage": self.stage,
            "status": self.status,
            "losses": dict(self.losses),
        }


@dataclass
class SHIteration:
    bracket: Bracket
    stage: int = 0
    actual: list[int] = field(default_factory=list)  # configs placed per stage so far
    runs: list[ConfigRun] = field(default_factory=list)  # insertion order = HpBandSter dict order
    num_running: int = 0
    is_finished: bool = False
    # configs per stage: the bracket's, until a wind-down shrinks them
    sizes: list[int] = field(default_factory=list)
    # next_run found nothing to hand out, and no result came since: it would find nothing again.
    # Derived, never saved: an ask scans every open iteration, and most of them wait on results.
    _blocked: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.actual:
            self.actual = [0] * len(self.bracket.num_configs)
        if not self.sizes:
            self.sizes = list(self.bracket.num_configs)

    @property
    def last_stage(self) -> int:
        return len(self.bracket.num_configs) - 1

    def resize(self, sizes: list[int]) -> None:
        """New stage sizes (a wind-down's ``wound_down``)."""
        self.sizes = list(sizes)
        self._blocked = False

    def next_run(self, sample: Sampler) -> ConfigRun | None:
        """HpBandSter's ``get_next_run``: the next config to start, or None."""
        if self._blocked:
            return None
        while True:
            if self.is_finished:
                return None
            for run in self.runs:
                if run.status == QUEUED:
                    run.status = RUNNING
                    self.num_running += 1
                    return run
            if self.actual[self.stage] < self.sizes[self.stage]:
                config, model_based = sample()
                self.runs.append(ConfigRun(len(self.runs), config, model_based, self.stage))
                self.actual[self.stage] += 1
                continue
            if self.num_running == 0:
                self._process_results()
                continue
            self._blocked = True
            return None

    def register(self, index: int, loss: float | None) -> None:
        self._blocked = False
        run = self.runs[index]
        run.losses[str(run.stage)] = loss
        run.status = REVIEW if loss is not None and math.isfinite(loss) else CRASHED
        self.num_running -= 1

    def _process_results(self) -> None:
        self.stage += 1
        reviewed = [r for r in self.runs if r.status == REVIEW]
        if self.stage > self.last_stage:
            self.is_finished = True
            for r in self.runs:
                r.status = COMPLETED
            return
        losses = np.array([r.losses[str(r.stage)] for r in reviewed], dtype=float)
        ranks = np.argsort(np.argsort(losses))  # default kind, as HpBandSter
        for r, rank in zip(reviewed, ranks, strict=True):
            if rank < self.sizes[self.stage]:
                r.status = QUEUED
                r.stage = self.stage
                self.actual[self.stage] += 1
            else:
                r.status = TERMINATED

    @property
    def complete(self) -> bool:
        """Finished, or nothing is left but the bookkeeping HpBandSter does on its next poll."""
        return self.is_finished or (
            self.stage == self.last_stage
            and self.actual[self.stage] >= self.sizes[self.stage]
            and self.num_running == 0
            and not any(r.status == QUEUED for r in self.runs)
        )

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for r in self.runs:
            out[r.status] += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "actual": list(self.actual),
            "runs": [r.state_dict() for r in self.runs],
            "num_running": self.num_running,
            "is_finished": self.is_finished,
            **sizes_state(self.bracket, self.sizes),
        }

    @classmethod
    def from_state_dict(cls, bracket: Bracket, state: dict[str, Any]) -> SHIteration:
        return cls(
            bracket=bracket,
            stage=state["stage"],
            actual=list(state["actual"]),
            runs=[ConfigRun(**r) for r in state["runs"]],
            num_running=state["num_running"],
            is_finished=state["is_finished"],
            sizes=list(state.get("sizes") or bracket.num_configs),
        )


def sizes_state(bracket: Bracket, sizes: list[int]) -> dict[str, Any]:
    """``sizes`` for a state dict, only once a wind-down changed them (older states: absent)."""
    return {} if tuple(sizes) == bracket.num_configs else {"sizes": list(sizes)}
