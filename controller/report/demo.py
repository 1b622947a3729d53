"""Write a synthetic Hyperband sweep with known structure to a store (tests, benchmark, docs demo).

The structure is planted: at the top budget the loss is dominated by ``lr`` (a bowl in log10 lr);
on small budgets ``width`` matters too (small networks learn faster), so ranks across budgets agree
less the further apart the budgets are. Trial ids follow BOHB's ``it<i>-c<j>-r<rung>``; files
follow the trial contract (``trial.json``, ``metrics.jsonl``, ``result.json``); timestamps come from
a simulated pool of workers, so Figure 1 and the usage plot look like a real sweep's.
"""

from __future__ import annotations

import heapq
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel

from trainer.contract import (
    FILE_METRICS,
    FILE_RESULT,
    FILE_TRIAL,
    MetricsLine,
    TrialInfo,
    TrialResult,
    TrialSpec,
    trial_prefix,
)
from trainer.store import Store

IMPORTANT = "lr"
START = datetime(2026, 1, 1, tzinfo=UTC)
GPU_HOUR_PRICE = 2.5


class DemoSweep(BaseModel):
    sweep: str
    url: str  # the sweep's URL (what `kubohb report` takes)
    trials: int
    budgets: list[float]


def sample_config(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "lr": float(10 ** rng.uniform(-4, -1)),
        "width": int(rng.integers(16, 257)),
        "dropout": float(rng.uniform(0, 0.8)),
        "optimizer": str(rng.choice(["sgd", "adam", "rmsprop"])),
        "depth": int(rng.integers(1, 9)),
        "unused": float(rng.uniform(0, 1)),  # has no effect at any budget
    }


def true_loss(config: dict[str, Any], budget: float, max_budget: float) -> float:
    """Noise-free loss: lr dominates at max_budget; width's effect fades as the budget grows."""
    lr_term = 0.5 * ((math.log10(config["lr"]) + 2.5) / 1.5) ** 2
    rest = 0.03 * config["dropout"] + 0.02 * (config["optimizer"] == "sgd")
    rest += 0.01 * abs(config["depth"] - 4) / 4
    width_term = 0.35 * (1 - budget / max_budget) * (config["width"] - 16) / 240
    return 0.1 + lr_term + rest + width_term


def hyperband_iteration(
    i: int, min_budget: float, max_budget: float, eta: int
) -> list[tuple[int, float]]:
    """(number of configs, budget) per rung of iteration i, as BOHB/Hyperband schedules it."""
    s_max = math.floor(math.log(max_budget / min_budget, eta) + 1e-9)
    s = s_max - i % (s_max + 1)
    n0 = math.ceil((s_max + 1) / (s + 1) * eta**s)
    return [(max(1, n0 // eta**k), max_budget * eta ** (k - s)) for k in range(s + 1)]


def write_demo_sweep(
    root: Store,
    *,
    sweep: str = "demo",
    iterations: int = 10,
    min_budget: float = 1,
    max_budget: float = 81,
    eta: int = 3,
    workers: int = 8,
    seed: int = 0,
    fail_rate: float = 0.03,
    curve_points: int = 12,
) -> DemoSweep:
    """Write ``iterations`` Hyperband iterations of the synthetic problem under <root>/<sweep>."""
    rng = np.random.default_rng(seed)
    free = [0.0] * workers  # when each simulated worker is next free, seconds after START
    heapq.heapify(free)
    count = 0
    budgets: set[float] = set()
    gpu_seconds: dict[str, float] = {}
    model_based: dict[str, bool] = {}
    for it in range(iterations):
        rungs = hyperband_iteration(it, min_budget, max_budget, eta)
        alive = [(j, sample_config(rng)) for j in range(rungs[0][0])]
        ready = 0.0
        for rung, (n, budget) in enumerate(rungs):
            alive = alive[:n]
            budgets.add(budget)
            losses: list[tuple[float, int, dict[str, Any]]] = []
            rung_end = ready
            for j, config in alive:
                start = max(ready, heapq.heappop(free))
                duration = budget * 30.0 * (0.5 + config["width"] / 256) * rng.uniform(0.8, 1.2)
                heapq.heappush(free, start + duration)
                rung_end = max(rung_end, start + duration)
                trial_id = f"it{it}-c{j}-r{rung}"
                noise = rng.normal(0, 0.01 + 0.04 / math.sqrt(budget))
                loss = min(1.0, max(0.0, true_loss(config, budget, max_budget) + noise))
                failed = bool(rng.uniform() < fail_rate)
                _write_trial(
                    root,
                    sweep,
                    trial_id,
                    config,
                    budget,
                    start,
                    duration,
                    loss,
                    failed,
                    curve_points,
                )
                count += 1
                gpu_seconds[trial_id] = duration
                # as BOHB would mark them once its model exists (a stand-in: every other config
                # after the first iteration), so the report's "proposed" column has both kinds
                model_based[trial_id] = it > 0 and j % 2 == 0
                losses.append((math.inf if failed else loss, j, config))
            losses.sort(key=lambda x: (x[0], x[1]))
            alive = [(j, c) for loss, j, c in losses if math.isfinite(loss)]
            ready = rung_end
    # the part of the controller's state.json (controller/sweep/state.py) that the report reads
    total = sum(gpu_seconds.values())
    root.put_json(
        f"{sweep}/state.json",
        {
            "sweep": sweep,
            "status": "finished",
            "stop_reason": "max_iterations",
            "gpu_seconds": total,
            "gpu_hour_price": GPU_HOUR_PRICE,
            "cost": total / 3600 * GPU_HOUR_PRICE,
            "trials": {
                k: {"gpu_seconds": v, "model_based": model_based[k], "queued_s": 0.0}
                for k, v in gpu_seconds.items()
            },
        },
    )
    return DemoSweep(sweep=sweep, url=root.url(sweep), trials=count, budgets=sorted(budgets))


def _write_trial(
    root: Store,
    sweep: str,
    trial_id: str,
    config: dict[str, Any],
    budget: float,
    start_s: float,
    duration: float,
    loss: float,
    failed: bool,
    curve_points: int,
) -> None:
    prefix = trial_prefix(sweep, trial_id)
    params = config["depth"] * 9 * config["width"] ** 2 + 10 * config["width"]  # conv-net-like
    spec = TrialSpec(
        sweep=sweep,
        trial_id=trial_id,
        config=config,
        budget=budget,
        dataset="synthetic",
        store_root=root.root,
    )
    root.put_json(f"{prefix}/{FILE_TRIAL}", spec.model_dump(mode="json"))
    epochs = np.linspace(budget / curve_points, budget, curve_points) if curve_points else ()
    lines = []
    for e in epochs:
        val = loss + (0.9 - loss) * (math.exp(-e / 3) - math.exp(-budget / 3))
        line = MetricsLine(
            epoch=float(e),
            step=int(e * 100),
            train_loss=val * 1.5,
            val_error=val,
            lr=config["lr"],
            seconds=duration * float(e) / budget,
        )
        lines.append(line.model_dump_json())
    if lines:
        root.put(f"{prefix}/{FILE_METRICS}", ("\n".join(lines) + "\n").encode())
    started = START + timedelta(seconds=start_s)
    result = TrialResult(
        trial_id=trial_id,
        status="failed" if failed else "ok",
        loss=None if failed else loss,
        error="synthetic failure: diverged" if failed else None,
        info=TrialInfo(
            params=params,
            epochs=budget,
            train_seconds=duration * 0.9,
            wall_seconds=duration,
            device="synthetic",
        ),
        started_at=started,
        finished_at=started + timedelta(seconds=duration),
    )
    root.put(f"{prefix}/{FILE_RESULT}", result.model_dump_json().encode())
