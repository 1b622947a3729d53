"""How the default model (``bohb.model: kubohb``) was chosen: candidate knob settings against
``bohb.model: faithful`` on exploration seeds that the suite never uses.

``python -m benchmarks.model_choice [--seeds 100] [--first-seed 1000] [--jobs 2]``. Each candidate
runs the suite's four problems plus counting ones 4+4 with kubohb (10 brackets, one worker, the
same evaluation as ``benchmarks.optimizers``) on seeds 1000..1099, and is scored by its mean-regret
ratio to ``faithful`` per problem. The rule, fixed before the suite was run on its own seeds
(0..49): the default is the candidate with the smallest geometric mean of those ratios over the
suite's four problems. The suite (``benchmarks/suite.py``) then measures the chosen default
against the peers on seeds 0..49, which took no part in the choice. Candidates: the settings that
stood out in a coarser screen (random_fraction 0 / 0.1 / 0.2 x bandwidth_factor 2 / 3 / 5 x
num_samples 64 / 256 on seeds 1000..1049; recorded in docs/bohb.md), each a change of one or two of
HpBandSter's knobs. Later rounds, each with its rule fixed before it ran and on the same
seeds: the second (``marg*``, ``all*``, ``rf0_top10``) chose per kind of space, by the geometric
mean over the two conditional problems for conditional spaces and over the two others for
spaces without conditions; the third (``rf0_*``, ``--problems counting_ones_8+8
mf_hartmann_6``) only the latter. ``--problems`` and ``--candidates`` run a subset (faithful,
the reference, always runs); the geometric mean is over the suite's problems among them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmarks.optimizers import _call, _chunks

CANDIDATES: dict[str, dict[str, Any]] = {
    "faithful": {},
    "rf0": {"random_fraction": 0.0},
    "rf0.05": {"random_fraction": 0.05},
    "rf0.1": {"random_fraction": 0.1},
    "rf0_bw5": {"random_fraction": 0.0, "bandwidth_factor": 5.0},
    "rf0_ns128": {"random_fraction": 0.0, "num_samples": 128},
    "all": {"all_budgets": True},
    "all_rf0": {"all_budgets": True, "random_fraction": 0.0},
    "rf0_top10": {"random_fraction": 0.0, "top_n_percent": 10},
    "marg": {"marginal": True},
    "marg_rf0": {"marginal": True, "random_fraction": 0.0},
    "marg_all": {"marginal": True, "all_budgets": True},
    "marg_all_rf0": {"marginal": True, "all_budgets": True, "random_fraction": 0.0},
    # third round (unconditional problems only): narrower sampling, fewer candidates, a wider
    # good set around random_fraction 0
    "rf0_bw2": {"random_fraction": 0.0, "bandwidth_factor": 2.0},
    "rf0_bw1.5": {"random_fraction": 0.0, "bandwidth_factor": 1.5},
    "rf0_bw1": {"random_fraction": 0.0, "bandwidth_factor": 1.0},
    "rf0_ns24": {"random_fraction": 0.0, "num_samples": 24},
    "rf0_ns32": {"random_fraction": 0.0, "num_samples": 32},
    "rf0_top25": {"random_fraction": 0.0, "top_n_percent": 25},
    "rf0_bw2_ns32": {"random_fraction": 0.0, "bandwidth_factor": 2.0, "num_samples": 32},
}
SUITE = ("conditional_nas", "conditional_nas_noisy", "counting_ones_8+8", "mf_hartmann_6")
PROBLEMS = (*SUITE, "counting_ones_4+4")


def _run(problem: str, knobs: dict[str, Any], seeds: list[int]) -> list[float]:
    job = {"mode": "regret", "problem": problem, "seeds": seeds, "iterations": 10, "knobs": knobs}
    return [r["regret"] for r in _call("kubohb", job)]  # "kubohb" there: bohb.model faithful


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_choice")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES), choices=CANDIDATES)
    args = parser.parse_args(argv)
    problems: list[str] = args.problems
    candidates = ["faithful", *(c for c in args.candidates if c != "faithful")]  # the reference
    suite = [p for p in problems if p in SUITE]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    started = time.perf_counter()
    tasks = [(p, c, chunk) for p in problems for c in candidates for chunk in _chunks(seeds, 4)]
    regrets: dict[tuple[str, str], list[float]] = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [(p, c, pool.submit(_run, p, CANDIDATES[c], chunk)) for p, c, chunk in tasks]
        for p, c, fut in futures:
            regrets.setdefault((p, c), []).extend(fut.result())
    print(f"seeds {seeds[0]}..{seeds[-1]}, wall {time.perf_counter() - started:.0f} s")
    header = " ".join(f"{p:>22}" for p in problems)
    print(f"{'candidate':<10} {header} {'geo-mean (suite)':>17}")
    scores = {}
    for c in candidates:
        ratios = {
            p: float(np.mean(regrets[(p, c)]) / np.mean(regrets[(p, "faithful")])) for p in problems
        }
        scores[c] = math.exp(float(np.mean([math.log(ratios[p]) for p in suite])))
        cells = " ".join(f"{np.mean(regrets[(p, c)]):>13.4f} ({ratios[p]:.2f})" for p in problems)
        print(f"{c:<10} {cells} {scores[c]:>17.3f}")
    print(f"chosen by the rule: {min(scores, key=scores.__getitem__)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
