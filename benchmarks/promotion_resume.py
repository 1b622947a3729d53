"""Promotions that continue (``bohb.promotion_resume``) against promotions from scratch, in virtual
time on the simulator (the real scheduler and BOHB through ``run_sweep``).

``python -m benchmarks.promotion_resume [--seeds N] [--gpus N] [--jobs N]``;
``python -m benchmarks promotion_resume`` runs the defaults (10 seeds, 16 GPUs, 2 processes).

Problem: ``problems.HartmannSeconds`` (MF-Hartmann-6 on the paper's seconds budgets 400 s .. 3 h,
eta 3), a learning curve whose loss at a budget is a function of (config, budget, seed) alone: a
continued run reaches in expectation what a run from scratch does, which is the assumption under
which the question is only one of cost. (Whether continuing matches a fresh run on a real network
is the trainer's schedule question, docs/trainer.md, "Promotions that continue"; no surrogate
answers it.) Cluster as ``benchmarks.simulate``: pod start 30 s +- 15 s, no preemptions.

Arms (seeds 0..N-1, fixed; seed s is bohb.seed, the simulator's and the surrogate's):
- ``scratch-8`` / ``resume-8``: synchronous promotions, 8 brackets, promotion_resume off / on:
  the same brackets, so the difference is the bill (GPU-hours per bracket, wall-clock); the
  configs differ where the model samples them, since results arrive at other moments;
- ``async-scratch-8`` / ``async-resume-8``: the same with ``promotion: async``;
- ``resume-cap``: promotion_resume on, no iteration limit, ``stop.max_gpu_hours`` = scratch-8's
  GPU-hours in the same seed (equal GPU-hours; wind-down on, as a user gets it): what the saving
  buys in search.

Figures: medians over seeds with a 95 % bootstrap interval; per-seed ratios to scratch-8 (paired
by seed) with their bootstrap interval; for resume-cap's regret a one-sided Wilcoxon signed-rank
p (resume-cap < scratch-8) over the seeds whose regrets differ.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import yaml
from scipy.stats import wilcoxon

from benchmarks.simulate import ITERATIONS, PROBLEM, START, Figure, SurrogateObjective, sweep_spec
from controller.backends.simulated import SimulatedBackend
from controller.sweep.runner import run_sweep
from controller.sweep.spec import parse_sweep
from controller.sweep.trials import incumbent
from trainer.store.memory import MemoryStore

ARMS = ("scratch-8", "resume-8", "async-scratch-8", "async-resume-8", "resume-cap")
REFERENCE = "scratch-8"


@dataclass
class Run:
    arm: str
    seed: int
    reason: str
    trials: int
    gpu_hours: float
    by_bracket: list[float]  # GPU-hours per bracket (iteration), in order
    wall_h: float
    regret: float
    continued: int  # trials that continued a lower rung
    cpu_s: float


def spec_of(arm: str, gpus: int, seed: int, cap: float | None) -> dict[str, Any]:
    """``benchmarks.simulate``'s sweep of the same promotion mode (its cluster, 8 brackets), with
    promotion_resume set by the arm's name; resume-cap capped at ``cap`` GPU-hours instead."""
    spec = sweep_spec("async-8" if arm.startswith("async") else "sync-8", gpus, seed)
    spec["bohb"]["promotion_resume"] = "resume" in arm
    if arm == "resume-cap":
        if cap is None:
            raise ValueError("resume-cap needs scratch-8's GPU-hours")
        spec["stop"] = {"max_gpu_hours": cap}
    return spec


def run_arm(arm: str, gpus: int, seed: int, cap: float | None = None) -> Run:
    cpu0 = time.process_time()
    text = yaml.safe_dump(spec_of(arm, gpus, seed, cap), sort_keys=False)
    spec = parse_sweep(text, f"<{arm}>")
    store = MemoryStore()
    backend = SimulatedBackend(
        spec.name, store, spec.backend.simulated, objective=SurrogateObjective(), start=START
    )
    outcome = run_sweep(spec, text, store=store, backend=backend)
    state = outcome.state
    final = incumbent(state)
    if final is None:
        raise RuntimeError(f"{arm} seed={seed}: no result at all")
    brackets: dict[int, float] = {}
    for t in state.trials.values():
        brackets[t.iteration] = brackets.get(t.iteration, 0.0) + t.gpu_seconds / 3600
    return Run(
        arm=arm,
        seed=seed,
        reason=outcome.reason,
        trials=len(state.trials),
        gpu_hours=state.gpu_seconds / 3600,
        by_bracket=[brackets[i] for i in sorted(brackets)],
        wall_h=backend.clock().elapsed_s / 3600,
        regret=PROBLEM.regret(final["config"]),
        continued=sum(t.continues is not None for t in state.trials.values()),
        cpu_s=time.process_time() - cpu0,
    )


def run_seed(job: tuple[int, int]) -> dict[str, Run]:
    gpus, seed = job
    runs = {REFERENCE: run_arm(REFERENCE, gpus, seed)}
    for arm in ARMS:
        if arm != REFERENCE:
            cap = runs[REFERENCE].gpu_hours if arm == "resume-cap" else None
            runs[arm] = run_arm(arm, gpus, seed, cap)
    return runs


def _ratios(runs: Sequence[dict[str, Run]], arm: str, what: str) -> Figure:
    return Figure.of([getattr(r[arm], what) / getattr(r[REFERENCE], what) for r in runs])


def report(runs: Sequence[dict[str, Run]], gpus: int) -> None:
    n = len(runs)
    print(f"\n{n} seeds, {gpus} GPUs, budgets 400 s .. 3 h, eta 3 (median [95 % bootstrap])")
    head = (
        f"{'arm':<16} {'GPU-h':>22} {'vs scratch-8':>22} {'wall h':>20} {'regret':>26} "
        f"{'trials':>7} {'continued':>9}  stop"
    )
    print(head)
    for arm in ARMS:
        rs = [r[arm] for r in runs]
        reasons = sorted({r.reason for r in rs})
        print(
            f"{arm:<16} {Figure.of([r.gpu_hours for r in rs]).fmt(1):>22} "
            f"{_ratios(runs, arm, 'gpu_hours').fmt(3):>22} "
            f"{Figure.of([r.wall_h for r in rs]).fmt(1):>20} "
            f"{Figure.of([r.regret for r in rs]).fmt(4):>26} "
            f"{sum(r.trials for r in rs) / n:>7.1f} {sum(r.continued for r in rs) / n:>9.1f}  "
            f"{','.join(reasons)}"
        )
    print("\nGPU-hours per bracket (sync; median over seeds; resume-8 / scratch-8 paired)")
    for i in range(ITERATIONS):
        scratch = [r["scratch-8"].by_bracket[i] for r in runs]
        resume = [r["resume-8"].by_bracket[i] for r in runs]
        ratio = Figure.of([b / a for a, b in zip(scratch, resume, strict=True)])
        print(
            f"  bracket {i}: scratch {Figure.of(scratch).fmt(1):>20}  "
            f"resume {Figure.of(resume).fmt(1):>20}  ratio {ratio.fmt(3)}"
        )
    ref = [r[REFERENCE].regret for r in runs]
    cap = [r["resume-cap"].regret for r in runs]
    diffs = [c - s for c, s in zip(cap, ref, strict=True) if c != s]
    p = wilcoxon(diffs, alternative="less").pvalue if len(diffs) >= 2 else math.nan
    ratio = Figure.of([c / s if s > 0 else math.nan for c, s in zip(cap, ref, strict=True)])
    print(
        f"resume-cap regret at scratch-8's GPU-hours: {Figure.of(cap).fmt(4)} vs "
        f"{Figure.of(ref).fmt(4)}; per-seed ratio {ratio.fmt(3)}; "
        f"lower in {sum(c < s for c, s in zip(cap, ref, strict=True))}/{n} seeds, "
        f"higher in {sum(c > s for c, s in zip(cap, ref, strict=True))}/{n} "
        f"(one-sided Wilcoxon p {p:.3g})"
    )
    print(f"CPU: {sum(r[a].cpu_s for r in runs for a in ARMS):.0f} s in all")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.promotion_resume")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--gpus", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    jobs = [(args.gpus, seed) for seed in range(args.seeds)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_seed, jobs))
    else:
        runs = [run_seed(j) for j in jobs]
    report(runs, args.gpus)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
