"""Warm start (``bohb.warm_start``): earlier sweeps' results seed a new sweep's BOHB models.

Each entry is an earlier sweep's folder URL (``<store root>/<sweep>``, the URL ``kubohb report``
takes). Its spec.yaml must describe the same search space (else the sweep is refused, with the
parameters that differ) and its state gives the results: every SUCCEEDED trial's (config, budget,
loss) at a budget of this sweep's schedule. Results at other budgets are skipped and counted;
FAILED trials are not used (their failure may be the cluster's, not the config's). Read once,
when the sweep is created: the results are in BOHB's first snapshot, so a resume never reads the
earlier sweeps again.
"""

from __future__ import annotations

import json
import math

from pydantic import BaseModel, ConfigDict

from controller.bohb import SearchSpace
from controller.sweep.journal import load_state
from controller.sweep.spec import SpecError, SweepSpec, parse_sweep
from controller.sweep.state import FILE_SPEC
from trainer.store import NotFound, StoreError, open_url


class WarmStartError(ValueError):
    """An earlier sweep cannot warm-start this one (bad input: exit 2)."""


class Prior(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    results: list[tuple[dict, float, float]]  # (config, budget, loss)
    skipped: int  # succeeded trials at a budget this schedule does not have


def space_diff(ours: SearchSpace, theirs: SearchSpace) -> list[str]:
    """The parameters that differ, one line each (``-`` theirs only, ``+`` ours only, ``~``
    changed), in name order; [] when the spaces are the same."""
    mine = {p.name: p.model_dump(exclude_none=True) for p in ours.parameters}
    other = {p.name: p.model_dump(exclude_none=True) for p in theirs.parameters}
    lines = []
    for name in sorted(set(mine) | set(other)):
        a, b = other.get(name), mine.get(name)
        if a == b:
            continue
        if b is None:
            lines.append(f"- {name}: {json.dumps(a)} (only in the earlier sweep)")
        elif a is None:
            lines.append(f"+ {name}: {json.dumps(b)} (only in this sweep)")
        else:
            lines.append(f"~ {name}: {json.dumps(a)} -> {json.dumps(b)}")
    return lines


def load_prior(spec: SweepSpec, url: str) -> Prior:
    """One earlier sweep's usable results; WarmStartError when it cannot warm-start ``spec``."""
    where = f"bohb.warm_start: {url}"
    try:
        store, name = open_url(url, endpoint_url=spec.store.endpoint_url, region=spec.store.region)
    except (StoreError, ValueError) as exc:
        raise WarmStartError(f"{where}: {exc}") from exc
    try:
        text = store.get(f"{name}/{FILE_SPEC}").decode()
    except NotFound:
        raise WarmStartError(
            f"{where}: no {FILE_SPEC} there; the URL must be a sweep's folder "
            "(<store root>/<sweep>)"
        ) from None
    try:
        earlier = parse_sweep(text, store.url(f"{name}/{FILE_SPEC}"))
    except SpecError as exc:
        raise WarmStartError(f"{where}: its {FILE_SPEC} is not a valid sweep: {exc}") from exc
    diff = space_diff(spec.space.build(), earlier.space.build())
    if diff:
        raise WarmStartError(
            f"{where}: its search space differs from this sweep's (a model of another space "
            "cannot seed this one):\n  " + "\n  ".join(diff)
        )
    state = load_state(store, name)
    if state is None:
        raise WarmStartError(f"{where}: no sweep state there (it never started)")
    budgets = spec.budgets()
    results: list[tuple[dict, float, float]] = []
    skipped = 0
    for t in state.trials.values():
        if t.state != "SUCCEEDED" or t.loss is None:
            continue
        if any(math.isclose(t.budget, b, rel_tol=1e-9) for b in budgets):
            results.append((dict(t.config), t.budget, t.loss))
        else:
            skipped += 1
    return Prior(url=url, results=results, skipped=skipped)
