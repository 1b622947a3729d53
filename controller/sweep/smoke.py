"""``kubohb run --smoke``: the same sweep file shrunk to two tiny trials under its own name.

It proves what a real run needs end to end (the trainer command and image, the store and its
credentials, the backend, its RBAC and GPU requests, the spec itself) in a minute or two, without
touching the real sweep: the name gets ``-smoke``, the budget one small value (1 epoch on a
256-image subset, or 20 seconds), the stop two brackets of one trial each, parallelism at most two.
Everything else (space, trainer, store, backend) is the file's own. Caps, the goal and price
classes are dropped: they are about the real run's money and objective.
"""

from __future__ import annotations

from typing import Any

import yaml

from controller.sweep.spec import SweepSpec, parse_sweep

SMOKE_TRIALS = 2
SMOKE_EPOCHS = 1.0
SMOKE_SECONDS = 20.0
SMOKE_IMAGES = 256  # training subset; validation and test take 64 each


def smoke(spec: SweepSpec) -> tuple[SweepSpec, str]:
    """The smoke sweep of ``spec`` and the text stored as its spec.yaml."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=True)
    data["name"] = f"{spec.name[: 63 - len('-smoke')]}-smoke"
    one = SMOKE_SECONDS if spec.budget.unit == "seconds" else SMOKE_EPOCHS
    data["budget"] = {"unit": spec.budget.unit, "min": one, "max": one, "eta": spec.budget.eta}
    # one budget: each bracket is one config, so two brackets are two trials and end the sweep
    # as finished (exit 0), not as capped
    data["stop"] = {"max_iterations": SMOKE_TRIALS}
    data["parallelism"] = min(spec.parallelism, SMOKE_TRIALS)
    trainer = data.setdefault("trainer", {})
    trainer["data"] = {
        **trainer.get("data", {}),
        "subset": SMOKE_IMAGES,
        "val_size": 64,
        "test_size": 64,
    }
    data.pop("cost", None)
    text = "# kubohb run --smoke of the sweep " + spec.name + "\n" + yaml.safe_dump(data)
    return parse_sweep(text, f"{spec.name} (smoke)"), text
