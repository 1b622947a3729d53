"""One Hyperband bracket with asynchronous promotions: the ASHA rule (Li et al. 2020) inside it.

``SHIteration`` (``iteration.py``) is HpBandSter's synchronous successive halving: a stage's
promotions wait until every config of the stage has reported. ``AsyncSHIteration`` promotes as soon
as a config is good enough among the results in so far (docs/bohb.md, "Asynchronous promotions"):

- ``next_run`` scans the stages from the top (``last_stage - 1``) down to 0. At stage k, ``done_k``
  are the configs with a result there (finite or failed) and ``fin_k`` the finite ones sorted by
  (loss, index). A config is promotable from k if it is among the first ``threshold_k`` of
  ``fin_k``, was not promoted yet and stage k+1 has room (``actual[k+1] < num_configs[k+1]``).
  ``threshold_k = floor(len(done_k) / eta)``, except when stage k is *closed* (no result can ever
  arrive there again): then ``threshold_k = num_configs[k+1]``, the synchronous rule, so failures
  upstream never leave a slot unused that HpBandSter would have filled. The best promotable config
  of the highest such stage runs next at stage k+1.
- Else, while fewer than ``num_configs[0]`` configs were sampled, a new one is sampled at stage 0
  (the same ``sample()`` call as ``SHIteration``'s, so the KDE is used the same way).
- Else nothing: once nothing runs and nothing can be promoted or sampled, the iteration is
  finished (every run marked COMPLETED, as ``SHIteration`` does).

Stage 0 is closed when all ``num_configs[0]`` configs were sampled and none runs at stage 0; stage
k > 0 when stage k-1 is closed, no promotion into k is possible any more and none runs at k.

``eta`` is passed in (the schedule's eta): the bracket's ``num_configs`` ratios are not eta when a
stage size is clipped at 1, and budget ratios are floats. Failed configs are never promoted; there
is no back-fill into higher stages (that is ``SHIteration``'s HpBandSter behaviour only). No
randomness of its own: ties are broken by config index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.bohb.hyperband import Bracket
from controller.bohb.iteration import (
    COMPLETED,
    CRASHED,
    REVIEW,
    RUNNING,
    STATES,
    TERMINATED,
    ConfigRun,
    Sampler,
    sizes_state,
)


def _finite(loss: float | None) -> bool:
    return loss is not None and math.isfinite(loss)


@dataclass
class _Stages:
    """What the rule needs of the runs, per stage; derived, never stored."""

    done: list[int]  # configs with a result at stage k (finite or failed)
    fin: list[list[ConfigRun]]  # configs with a finite result at stage k, by (loss, index)
    running: list[int]  # configs running at stage k
    closed: list[bool]  # no result can ever arrive at stage k again


@dataclass
class AsyncSHIteration:
    bracket: Bracket
    eta: float
    stage: int = 0  # the highest stage any run has reached
    actual: list[int] = field(default_factory=list)  # configs placed per stage so far
    runs: list[ConfigRun] = field(default_factory=list)  # index = config index in the iteration
    num_running: int = 0
    is_finished: bool = False
    # configs per stage: the bracket's, until a wind-down shrinks them
    sizes: list[int] = field(default_factory=list)
    # next_run found nothing to hand out, and no result came since: it would find nothing again
    # (only register changes what it sees). Derived, never saved: an ask scans every open
    # iteration, and most of them wait on results.
    _blocked: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.eta > 1:
            raise ValueError(f"eta ({self.eta}) must be > 1")
        if not self.actual:
            self.actual = [0] * len(self.bracket.num_configs)
        if not self.sizes:
            self.sizes = list(self.bracket.num_configs)

    @property
    def last_stage(self) -> int:
        return len(self.bracket.num_configs) - 1

    def resize(self, sizes: list[int]) -> None:
        """New stage sizes (a wind-down's ``iteration.wound_down``)."""
        self.sizes = list(sizes)
        self._blocked = False

    # ---- the rule --------------------------------------------------------------------------
    def _stages(self) -> _Stages:
        n_stages = len(self.bracket.num_configs)
        done = [0] * n_stages
        fin: list[list[ConfigRun]] = [[] for _ in range(n_stages)]
        running = [0] * n_stages
        for r in self.runs:
            if r.status == RUNNING:
                running[r.stage] += 1
            for key, loss in r.losses.items():
                k = int(key)
                done[k] += 1
                if _finite(loss):
                    fin[k].append(r)
        for k, runs in enumerate(fin):
            runs.sort(key=_sort_key(k))
        closed = [False] * n_stages
        closed[0] = self.actual[0] >= self.sizes[0] and running[0] == 0
        stages = _Stages(done, fin, running, closed)
        for k in range(1, n_stages):
            closed[k] = (
                closed[k - 1] and self._best_promotable(stages, k - 1) is None and running[k] == 0
            )
        return stages

    def _threshold(self, stages: _Stages, k: int) -> int:
        if stages.closed[k]:
            return self.sizes[k + 1]
        return math.floor(stages.done[k] / self.eta)

    def _best_promotable(self, stages: _Stages, k: int) -> ConfigRun | None:
        """The config to promote from stage k to k+1 now, or None (needs ``closed[k]`` set)."""
        if self.actual[k + 1] >= self.sizes[k + 1]:
            return None
        for r in stages.fin[k][: self._threshold(stages, k)]:
            if r.stage == k:  # not promoted yet (a promoted config's stage is above k)
                return r
        return None

    def next_run(self, sample: Sampler) -> ConfigRun | None:
        """The next config to start: the best promotion, else a new config at stage 0, or None."""
        if self.is_finished or self._blocked:
            return None
        stages = self._stages()
        for k in range(self.last_stage - 1, -1, -1):
            run = self._best_promotable(stages, k)
            if run is not None:
                run.stage = k + 1
                run.status = RUNNING
                self.num_running += 1
                self.actual[k + 1] += 1
                self.stage = max(self.stage, k + 1)
                self._settle(self._stages())
                return run
        if self.actual[0] < self.sizes[0]:
            config, model_based = sample()
            run = ConfigRun(len(self.runs), config, model_based, 0, status=RUNNING)
            self.runs.append(run)
            self.actual[0] += 1
            self.num_running += 1
            return run
        self._settle(stages)
        if stages.closed[self.last_stage]:
            self.is_finished = True
            for r in self.runs:
                r.status = COMPLETED
        self._blocked = True
        return None

    def _settle(self, stages: _Stages) -> None:
        """Mark TERMINATED the reviewed configs that can never be promoted (for ``counts()``)."""
        for k in range(self.last_stage):
            full = self.actual[k + 1] >= self.sizes[k + 1]
            if not (full or stages.closed[k]):
                continue
            keep = set() if full else {r.index for r in stages.fin[k][: self.sizes[k + 1]]}
            for r in stages.fin[k]:
                if r.stage == k and r.status == REVIEW and r.index not in keep:
                    r.status = TERMINATED

    def register(self, index: int, loss: float | None) -> None:
        self._blocked = False
        run = self.runs[index]
        run.losses[str(run.stage)] = loss
        run.status = REVIEW if _finite(loss) else CRASHED
        self.num_running -= 1

    @property
    def complete(self) -> bool:
        """Nothing more can be handed out and nothing of this iteration runs."""
        return self.is_finished or self._stages().closed[self.last_stage]

    # ---- views and state -------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for r in self.runs:
            out[r.status] += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "eta": self.eta,
            "stage": self.stage,
            "actual": list(self.actual),
            "runs": [r.state_dict() for r in self.runs],
            "num_running": self.num_running,
            "is_finished": self.is_finished,
            **sizes_state(self.bracket, self.sizes),
        }

    @classmethod
    def from_state_dict(cls, bracket: Bracket, state: dict[str, Any]) -> AsyncSHIteration:
        return cls(
            bracket=bracket,
            eta=state["eta"],
            stage=state["stage"],
            actual=list(state["actual"]),
            runs=[ConfigRun(**r) for r in state["runs"]],
            num_running=state["num_running"],
            is_finished=state["is_finished"],
            sizes=list(state.get("sizes") or bracket.num_configs),
        )


def _sort_key(k: int) -> Callable[[ConfigRun], tuple[float, int]]:
    key = str(k)

    def by_loss_then_index(r: ConfigRun) -> tuple[float, int]:
        loss = r.losses[key]
        return (math.inf if loss is None else loss, r.index)  # only finite results are sorted

    return by_loss_then_index
