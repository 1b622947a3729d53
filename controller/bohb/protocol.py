"""What the sweep loop needs of an optimiser: the ``Optimizer`` protocol and its two value types.

The scheduler is typed against ``Optimizer`` only, so another optimiser (or a test double) can
drive the same loop. ``BOHB`` (``optimizer.py``) is the implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from controller.bohb.hyperband import Bracket


def trial_id_of(config_id: str, rung: int) -> str:
    """The trial id of a config at a rung: ``Suggestion.trial_id``'s form."""
    return f"{config_id}-r{rung}"


class Suggestion(BaseModel):
    model_config = ConfigDict(frozen=True)

    trial_id: str  # it{iteration}-c{index}-r{rung}: DNS-safe, one per (config, budget)
    config_id: str  # it{iteration}-c{index}: kept when the config is promoted
    config: dict[str, Any]  # active parameters only
    budget: float
    rung: int  # index into BOHB.budgets
    iteration: int
    model_based: bool


class Incumbent(BaseModel):
    model_config = ConfigDict(frozen=True)

    config: dict[str, Any]
    config_id: str
    trial_id: str
    budget: float
    loss: float


class Optimizer(Protocol):
    """Ask/tell: ``ask`` hands out the next trial or None (nothing can start until a result is
    told), ``tell`` reports its loss (None, NaN or inf = failed), ``state_dict`` is JSON-able and
    restores the optimiser exactly."""

    # the iteration (bracket) limit; None = open-ended. The loop may lower it (a cap).
    max_iterations: int | None

    @property
    def finished(self) -> bool:
        """No work is left, and none will be (its iteration limit is reached and done)."""
        ...

    def ask(self) -> Suggestion | None: ...

    def tell(self, trial_id: str, loss: float | None) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def incumbent(self) -> Incumbent | None: ...

    def take_ops(self) -> list[dict[str, Any]]:
        """The asks and tells since the last call (JSON-able), for a journal: replayed on the
        state the optimiser had before them, they give its state now."""
        ...

    def promotable(self, trial_id: str) -> bool:
        """The told trial's config may still be handed out at the next budget of its iteration
        (a promotion not decided yet: what may continue from its checkpoint)."""
        ...

    def next_bracket(self) -> Bracket:
        """The bracket the next new iteration would run (what opening it would cost)."""
        ...

    def outstanding(self) -> dict[float, int]:
        """Trials the open iterations will still hand out (not yet asked), by budget."""
        ...

    @property
    def wound_down(self) -> bool:
        """``wind_down`` was called: no new config will start, only promotions."""
        ...

    def wind_down(self, fits: Callable[[dict[float, int]], bool] | None = None) -> None:
        """Start no new config from now on (but, with ``fits``, as many first-stage configs as
        it allows): finish the open brackets, promoting their best to the largest budget (a cap
        that cannot pay for them)."""
        ...
