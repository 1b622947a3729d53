"""The search-quality suite: kubohb against the field's optimisers at equal total budget.

``python -m benchmarks.suite [--seeds N] [--problems ...] [--methods ...] [--jobs N]``;
``make bench`` and ``python -m benchmarks suite`` run the defaults (50 seeds, every problem and
method below, 2 processes). Needs ``.venv-hpbandster`` (``make hpbandster-venv``) and
``.venv-peers`` (``make peers-venv``: Optuna 5.0.0, DEHB 0.1.2); a method whose venv is missing
is left out and named.

Problems (``benchmarks/problems.py``): ``conditional_nas`` (11-D conditional mixed space shaped
like a NAS space, a learning curve whose low-budget ranking misleads), ``conditional_nas_noisy``
(the same with noise that does not shrink with the budget), ``counting_ones_8+8`` (16-D, half
binary categoricals), ``mf_hartmann_6`` (smooth continuous, 6-D + fidelity).

Methods, each in its own process with one BLAS thread, the same seeds (fixed: 0..N-1):
``kubohb`` (BOHB as a sweep runs it by default: ``bohb.model: kubohb``), ``faithful`` (kubohb with
``bohb.model: faithful``, HpBandSter's knobs: what the default changes), ``hpbandster``
(HpBandSter 0.7.4's BOHB), ``optuna`` (TPESampler(multivariate) + HyperbandPruner), ``dehb``
(DEHB), ``random`` (random search at full budget). Equal total budget B = what 10
successive-halving brackets of the Hyperband schedule (eta 3) train, each trial counted as it
trains: BOHB's and DEHB's promotions train from scratch (a promoted config costs every budget it
ran at), Optuna's pruned trials continue their curve (a trial costs the largest budget it
reached), random search runs B / max_budget full trials.
SMAC3 and Syne Tune are not in the suite (not installed; see docs/benchmarks.md).

Figures per problem and method: mean and median final regret (the noise-free regret of the
config with the best observed loss at the largest budget), a 95 % bootstrap interval of the mean,
each peer's mean ÷ kubohb's with its interval, and the one-sided Mann-Whitney p that kubohb's
regrets are larger than the peer's (small p: kubohb significantly worse). Then the issue's
acceptance, problem by problem: kubohb's mean ≤ the best peer's, or not significantly worse
(p ≥ 0.05) and ≤ 1.1× it; never significantly worse than HpBandSter; ≤ 0.9× HpBandSter on the
conditional problem. Exit 1 on FAIL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from benchmarks.optimizers import HPB_PYTHON, _call, _chunks
from benchmarks.workers import ROOT, bootstrap_ratio, run_worker
from controller.bohb.hyperband import Schedule

PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PROBLEMS = ("conditional_nas", "conditional_nas_noisy", "counting_ones_8+8", "mf_hartmann_6")
METHODS = ("kubohb", "faithful", "hpbandster", "optuna", "dehb", "random")
OURS = ("kubohb", "faithful")  # not peers: the acceptance compares kubohb with the others
WORKER_METHOD = {"kubohb": "default", "faithful": "kubohb"}  # benchmarks.optimizers' names
BRACKETS = 10
ETA = 3


def _call_peer(method: str, job: dict[str, Any]) -> Any:
    cmd = [str(PEERS_PYTHON), str(ROOT / "benchmarks" / "peers_runner.py")]
    return run_worker(cmd, {**job, "method": method}, f"{method} worker")


def _run(method: str, problem: str, seeds: list[int]) -> list[dict[str, Any]]:
    from benchmarks.problems import PROBLEMS as ALL

    p = ALL[problem]
    schedule = Schedule(p.min_budget, p.max_budget, ETA)
    if method in ("optuna", "dehb"):
        total = sum(schedule.bracket(i).total_budget for i in range(BRACKETS))
        job = {"problem": problem, "seeds": seeds, "total_budget": total, "eta": ETA}
        return list(_call_peer(method, {**job, "budgets": list(schedule.budgets)}))
    job = {"mode": "regret", "problem": problem, "seeds": seeds, "iterations": BRACKETS}
    return list(_call(WORKER_METHOD.get(method, method), job))


def _mean_ci(values: np.ndarray, n: int = 5000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    means = rng.choice(values, size=(n, len(values))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=4, help="seed groups per (problem, method)")
    parser.add_argument("--out", type=Path, help="also write every run as JSON here")
    args = parser.parse_args(argv)
    methods = list(args.methods)
    for method, venv in (
        ("hpbandster", HPB_PYTHON),
        ("optuna", PEERS_PYTHON),
        ("dehb", PEERS_PYTHON),
    ):
        if method in methods and not venv.exists():
            print(f"{method}: left out, {venv} is missing (make hpbandster-venv / peers-venv)")
            methods.remove(method)
    seeds = list(range(args.seeds))
    tasks = [
        (problem, method, chunk)
        for problem in args.problems
        for method in methods
        for chunk in _chunks(seeds, args.chunks)
    ]
    tasks.sort(key=lambda t: t[1] != "hpbandster")  # the slowest first: the pool drains evenly
    started = time.perf_counter()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [(p, m, pool.submit(_run, m, p, c)) for p, m, c in tasks]
        for problem, method, fut in futures:
            results.setdefault((problem, method), []).extend(fut.result())
    wall = time.perf_counter() - started
    if args.out:
        args.out.write_text(json.dumps({f"{p}/{m}": r for (p, m), r in results.items()}, indent=1))
    return _report(args.problems, methods, results, args.seeds, wall)


def _report(
    problems: list[str],
    methods: list[str],
    results: dict[tuple[str, str], list[dict[str, Any]]],
    n_seeds: int,
    wall: float,
) -> int:
    print(
        f"{n_seeds} seeds (0..{n_seeds - 1}), {BRACKETS} brackets' worth of budget (eta {ETA}), "
        f"one worker and one BLAS thread per process; wall {wall:.0f} s"
    )
    print(
        f"{'problem':<22} {'method':<11} {'mean regret [95% CI]':>30} {'median':>8} "
        f"{'evals':>6} {'budget':>7} {'÷ kubohb [95% CI]':>22} {'p (kubohb worse)':>17} "
        f"{'ms/eval':>8}"
    )
    verdicts: list[str] = []
    for problem in problems:
        regrets = {
            m: np.array(
                [r["regret"] for r in sorted(results[(problem, m)], key=lambda r: r["seed"])]
            )
            for m in methods
        }
        ours = regrets.get("kubohb")
        for m in methods:
            runs = results[(problem, m)]
            low, high = _mean_ci(regrets[m])
            ratio, p = "", ""
            if ours is not None and m != "kubohb":
                lo, hi = bootstrap_ratio(regrets[m], ours)
                ratio = f"{regrets[m].mean() / ours.mean():.3f} [{lo:.2f}, {hi:.2f}]"
                p = f"{mannwhitneyu(ours, regrets[m], alternative='greater').pvalue:.3g}"
            evals = statistics.fmean(r["evaluations"] for r in runs)
            budget = statistics.fmean(r["budget_used"] for r in runs)
            ms = 1000 * statistics.fmean(r["optimiser_s_per_eval"] for r in runs)
            print(
                f"{problem:<22} {m:<11} {regrets[m].mean():>10.4f} [{low:.4f}, {high:.4f}] "
                f"{float(np.median(regrets[m])):>8.4f} {evals:>6.0f} {budget:>7.0f} {ratio:>22} "
                f"{p:>17} {ms:>8.2f}"
            )
        if ours is not None:
            verdicts += _acceptance(problem, regrets)
    print("\nACCEPTANCE (issue 'search quality')")
    for line in verdicts:
        print(f"  {line}")
    ok = all(line.endswith("PASS") for line in verdicts)
    print(f"  suite: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def _acceptance(problem: str, regrets: dict[str, np.ndarray]) -> list[str]:
    ours = regrets["kubohb"]
    peers = {m: r for m, r in regrets.items() if m not in OURS}
    out = []
    if peers:
        best = min(peers, key=lambda m: float(peers[m].mean()))
        ratio = float(ours.mean() / peers[best].mean())
        p = float(mannwhitneyu(ours, peers[best], alternative="greater").pvalue)
        fine = ratio <= 1.0 or (p >= 0.05 and ratio <= 1.1)
        out.append(
            f"{problem}: kubohb {ratio:.3f}x the best peer ({best}), p {p:.3g}: "
            + ("PASS" if fine else "FAIL")
        )
    if "hpbandster" in peers:
        p = float(mannwhitneyu(ours, peers["hpbandster"], alternative="greater").pvalue)
        out.append(
            f"{problem}: not significantly worse than HpBandSter (p {p:.3g}): "
            + ("PASS" if p >= 0.05 else "FAIL")
        )
        if problem.startswith("conditional"):
            ratio = float(ours.mean() / peers["hpbandster"].mean())
            out.append(
                f"{problem}: <= 0.9x HpBandSter ({ratio:.3f}x): "
                + ("PASS" if ratio <= 0.9 else "FAIL")
            )
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
