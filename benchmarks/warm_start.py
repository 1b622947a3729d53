"""Warm start (``bohb.warm_start``) against a cold start at equal budget, in virtual time on the
simulator (the real scheduler and BOHB through ``run_sweep``, file stores in a temporary folder).

``python -m benchmarks.warm_start [--seeds N] [--brackets B ...] [--gpus N] [--jobs N]``;
``python -m benchmarks warm_start`` runs the defaults (50 seeds; 2 and 8 brackets; 16 GPUs; 2
processes).

Problem and cluster: those of ``benchmarks.promotion_resume`` (``problems.HartmannSeconds``, the
paper's budgets 400 s .. 3 h, eta 3, sync promotions, pod start 30 s +- 15 s), B brackets
(``stop.max_iterations``: 2 = the first two of Hyperband's round, 48 trials; 8 = two rounds, 130
trials, 90 GPU-hours). For seed s (0..N-1, fixed): ``cold`` is the sweep of seed s; ``warm`` is
the same sweep (same seeds, same brackets: equal GPU-hours) warm-started from an earlier sweep,
the cold sweep of seed s + N with the same brackets (another BOHB, simulator and noise seed: a
previous run of the same search, as a CI pipeline's previous commit is). Figures: the final
regret of each, median with a 95 % bootstrap interval and mean, the per-seed ratio warm / cold
with its interval, and a one-sided Wilcoxon signed-rank p (warm < cold); the trials until the
first model-based proposal. Seeds and bracket counts were fixed before these figures were taken.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from scipy.stats import wilcoxon

from benchmarks.promotion_resume import spec_of
from benchmarks.simulate import PROBLEM, START, Figure, SurrogateObjective
from controller.backends.simulated import SimulatedBackend
from controller.sweep.runner import run_sweep
from controller.sweep.spec import parse_sweep
from controller.sweep.trials import incumbent
from trainer.store import FileStore


def run_one(
    root: Path, name: str, gpus: int, seed: int, warm_from: str | None, brackets: int = 8
) -> tuple[float, int]:
    """(final regret, index of the first model-based trial) of one sweep."""
    spec: dict[str, Any] = spec_of("scratch-8", gpus, seed, None)
    spec["name"] = name
    spec["stop"] = {"max_iterations": brackets}
    spec["store"] = {"url": str(root)}
    if warm_from is not None:
        spec["bohb"]["warm_start"] = [warm_from]
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = parse_sweep(text, f"<{name}>")
    store = FileStore(root)
    backend = SimulatedBackend(
        name, store, parsed.backend.simulated, objective=SurrogateObjective(), start=START
    )
    state = run_sweep(parsed, text, store=store, backend=backend).state
    final = incumbent(state)
    if final is None:
        raise RuntimeError(f"{name}: no result")
    first = next((i for i, t in enumerate(state.trials.values()) if t.model_based), -1)
    return PROBLEM.regret(final["config"]), first


def run_seed(job: tuple[int, int, int, int]) -> dict[str, tuple[float, int]]:
    gpus, seed, n, brackets = job
    with tempfile.TemporaryDirectory(prefix="kubohb-warm-") as tmp:
        root = Path(tmp)
        run_one(root, "earlier", gpus, seed + n, None, brackets)
        return {
            "cold": run_one(root, "cold", gpus, seed, None, brackets),
            "warm": run_one(root, "warm", gpus, seed, str(root / "earlier"), brackets),
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warm_start")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--brackets", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--gpus", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    for brackets in args.brackets:
        report(brackets, args)
    return 0


def report(brackets: int, args: argparse.Namespace) -> None:
    jobs = [(args.gpus, s, args.seeds, brackets) for s in range(args.seeds)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_seed, jobs))
    else:
        runs = [run_seed(j) for j in jobs]
    cold = [r["cold"][0] for r in runs]
    warm = [r["warm"][0] for r in runs]
    n = len(runs)
    diffs = [w - c for w, c in zip(warm, cold, strict=True) if w != c]
    p = wilcoxon(diffs, alternative="less").pvalue if len(diffs) >= 2 else math.nan
    ratio = Figure.of([w / c if c > 0 else math.nan for w, c in zip(warm, cold, strict=True)])
    print(f"\n{n} seeds, {args.gpus} GPUs, {brackets} brackets each, warm from seed s+{n}")
    print(f"  cold regret  {Figure.of(cold).fmt(4)}  mean {sum(cold) / n:.4f}")
    print(f"  warm regret  {Figure.of(warm).fmt(4)}  mean {sum(warm) / n:.4f}")
    print(
        f"  warm / cold per seed {ratio.fmt(3)}; lower in "
        f"{sum(w < c for w, c in zip(warm, cold, strict=True))}/{n}, higher in "
        f"{sum(w > c for w, c in zip(warm, cold, strict=True))}/{n} "
        f"(one-sided Wilcoxon p {p:.3g})"
    )
    print(
        "  first model-based trial: cold "
        f"{Figure.of([float(r['cold'][1]) for r in runs]).fmt(1)}, warm "
        f"{Figure.of([float(r['warm'][1]) for r in runs]).fmt(1)}"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
