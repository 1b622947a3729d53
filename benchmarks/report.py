"""Report benchmark: `kubohb report` of 1,000, 10,000 and 30,000 trials; fANOVA exact vs sampled.

``python -m benchmarks report`` or
``python -m benchmarks.report [--trials N ...] [--reps R] [--big-reps R] [--keep DIR]``.

For each size, writes a synthetic Hyperband sweep (controller/report/demo.py) of about N trials to
a directory store (without fsync: the sweep is scaffolding, not what is timed), then:

- times ``python -m controller.report SWEEP_URL --out DIR`` end to end in a fresh process
  (interpreter start and imports included: what a user waits for), wall and CPU seconds of it and
  its forked workers, median over ``--reps`` runs (``--big-reps`` above 10,000 trials);
- times each phase once in this process (load, analyse, figures, page);
- fANOVA on every budget's table, one core: exact (``method="exact"``) against sampled pairwise
  importances (``method="sampled"``, what budgets above EXACT_MAX_CONFIGS configs get), median
  time over the same repetitions with forest seeds 0, 1, ...; the largest absolute difference in
  any parameter's importance and in each pair's, against the sampled method's own standard error;
- the peer: main effects by Monte Carlo over the same forest's trees (what one writes without the
  fanova package) against our exact decomposition, time and largest difference.

Targets: ≤ 30 s on 2 cores at 1,000 (issue 6) and at 10,000 trials; 30,000 is reported only.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.store import FileStore

if TYPE_CHECKING:
    from controller.report.fanova import BudgetImportance, Method
    from controller.report.load import SweepData

TARGET_S = 30.0
TARGET_UP_TO = 10_000  # trials; bigger sweeps are measured, not held to the target
SIZES = [1_000, 10_000, 30_000]
_METHODS: tuple[Method, ...] = ("exact", "sampled")


class _UnsyncedFileStore(FileStore):
    """Plain writes, no fsync per file: a 30,000-trial sweep is written in 15 s instead of 80+."""

    def put(self, key: str, data: bytes) -> None:
        path = self.dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _iterations_for(trials: int) -> int:
    from controller.report.demo import hyperband_iteration

    total, it = 0, 0
    while total < trials:
        total += sum(n for n, _ in hyperband_iteration(it, 1, 81, 3))
        it += 1
    return it


def _mc_fractions(
    trees: list[object],
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
    grid: int = 20,
    background: int = 200,
) -> np.ndarray:
    """Per-tree main-effect fractions by sampling (mean over trees): the peer."""
    d = len(lo)
    out = []
    for tree in trees:
        base = rng.uniform(lo, hi, size=(background, d))
        total = float(np.var(tree.predict(base)))  # type: ignore[attr-defined]
        if total == 0:
            continue
        row = []
        for i in range(d):
            xs = np.linspace(lo[i], hi[i], grid + 1)[:-1] + (hi[i] - lo[i]) / grid / 2
            pts = np.repeat(base, grid, axis=0)
            pts[:, i] = np.tile(xs, background)
            marg = tree.predict(pts).reshape(background, grid).mean(axis=0)  # type: ignore[attr-defined]
            row.append(float(np.var(marg)) / total)
        out.append(row)
    return np.array(out).mean(axis=0)


def _tables(data: SweepData) -> dict[float, list[tuple[dict[str, object], float]]]:
    """budget → (config, loss) rows, as the report builds them (summary.analyse)."""
    from controller.report.correlation import losses_by_budget

    table = losses_by_budget((t.config_id, t.budget, t.loss) for t in data.trials)
    configs = {t.config_id: t.config for t in data.trials}
    return {
        b: [(configs[c], loss) for c, loss in sorted(rows.items())] for b, rows in table.items()
    }


def _peer(data: SweepData) -> tuple[float, float, float, int]:
    """(exact s, Monte Carlo s, max abs difference, configs) on the biggest budget table."""
    from sklearn.ensemble import RandomForestRegressor

    from controller.report.fanova import N_TREES, _Tree, encode, infer_params

    rows = max(_tables(data).values(), key=len)
    params = infer_params([c for c, _ in rows])
    x, y = encode([c for c, _ in rows], params), np.array([loss for _, loss in rows])
    lo, hi = np.array([p.lo for p in params]), np.array([p.hi for p in params])
    forest = RandomForestRegressor(
        n_estimators=N_TREES, max_features=0.7, random_state=0, n_jobs=1
    ).fit(x, y)
    t0 = time.perf_counter()
    trees = [t for t in (_Tree(e, lo, hi) for e in forest.estimators_) if t.var > 0]
    exact = np.array([[t.main_effect(i) / t.var for i in range(len(params))] for t in trees])
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mc = _mc_fractions(list(forest.estimators_), lo, hi, np.random.default_rng(0))
    mc_s = time.perf_counter() - t0
    return exact_s, mc_s, float(np.abs(exact.mean(axis=0) - mc).max()), len(rows)


def _differences(
    exact: BudgetImportance, sampled: BudgetImportance
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """|exact - sampled| per parameter, and per pair (with the sampled pair's standard error)."""
    ind = {i.name: i.fraction for i in exact.individual}
    per_param = {i.name: abs(i.fraction - ind[i.name]) for i in sampled.individual}
    pairs = {p.names: p.fraction for p in exact.pairwise}
    per_pair = {
        " × ".join(p.names): (abs(p.fraction - pairs[p.names]), p.se) for p in sampled.pairwise
    }
    return per_param, per_pair


def _fanova_comparison(data: SweepData, reps: int) -> bool:
    """Exact vs sampled fANOVA on every budget; prints a table. True when every pair's
    difference is within 2 of its standard errors (the calibration of what the page prints)."""
    from controller.report.fanova import EXACT_MAX_CONFIGS, decompose, encode, infer_params

    tables = _tables(data)
    params = infer_params([c for rows in tables.values() for c, _ in rows])
    print(
        f"  fANOVA per budget, one core, {reps} forest seed(s) — exact vs sampled pairs "
        f"(auto: sampled above {EXACT_MAX_CONFIGS} configs):"
    )
    print(
        f"  {'budget':>7} {'configs':>8} {'auto':>8} {'exact s':>8} {'sampled s':>9} "
        f"{'max|Δ| param':>12} {'max|Δ| pair':>11} {'max s.e.':>9} {'max |Δ|/s.e.':>12}"
    )
    calibrated = True
    worst_param: dict[str, float] = {}
    worst_pair: dict[str, float] = {}
    totals = {"exact": 0.0, "sampled": 0.0, "auto": 0.0}
    for budget in sorted(tables, key=lambda b: -len(tables[b])):
        rows = tables[budget]
        x = encode([c for c, _ in rows], params)
        y = np.array([loss for _, loss in rows], dtype=float)
        times: dict[str, list[float]] = {"exact": [], "sampled": []}
        d_param, d_pair, se_max, z_max = 0.0, 0.0, 0.0, 0.0
        for seed in range(reps):
            got: dict[str, BudgetImportance] = {}
            for method in _METHODS:
                t0 = time.perf_counter()
                got[method] = decompose(x, y, params, budget, seed=seed, method=method)
                times[method].append(time.perf_counter() - t0)
            if got["exact"].note is not None:
                break
            per_param, per_pair = _differences(got["exact"], got["sampled"])
            for name, diff in per_param.items():
                worst_param[name] = max(worst_param.get(name, 0.0), diff)
                d_param = max(d_param, diff)
            for name, (diff, se) in per_pair.items():
                worst_pair[name] = max(worst_pair.get(name, 0.0), diff)
                d_pair, se_max = max(d_pair, diff), max(se_max, se)
                z = diff / se if se > 0 else (0.0 if diff == 0 else float("inf"))
                z_max = max(z_max, z)
                calibrated &= z <= 2.0
        ex, sa = statistics.median(times["exact"]), statistics.median(times["sampled"])
        auto = "exact" if len(y) <= EXACT_MAX_CONFIGS else "sampled"
        totals["exact"] += ex
        totals["sampled"] += sa
        totals["auto"] += ex if auto == "exact" else sa
        print(
            f"  {budget:>7g} {len(y):>8} {auto:>8} {ex:>8.2f} {sa:>9.2f} {d_param:>12.5f} "
            f"{d_pair:>11.5f} {se_max:>9.5f} {z_max:>12.2f}"
        )
    print(
        f"  all budgets: exact {totals['exact']:.2f} s, sampled {totals['sampled']:.2f} s, "
        f"auto (what the report runs) {totals['auto']:.2f} s (one core; the report runs the "
        "budgets in 2 processes)"
    )
    print(
        "  max |Δ| per parameter (main effects; exact in both methods): "
        + ", ".join(f"{k} {v:.5f}" for k, v in sorted(worst_param.items()))
    )
    print(
        "  max |Δ| per pair (the 8 largest): "
        + ", ".join(
            f"{k} {v:.5f}" for k, v in sorted(worst_pair.items(), key=lambda kv: -kv[1])[:8]
        )
    )
    return calibrated


def _end_to_end(url: str, out: Path) -> tuple[float, float]:
    """(wall s, CPU s of the report and its forked workers) of one fresh-process report."""
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "controller.report", url, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return wall, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)


def _one_size(trials: int, reps: int, base: Path) -> tuple[int, float, float, bool]:
    """Everything for one sweep size; (trials, median wall s, median CPU s, calibrated)."""
    from controller.report.demo import write_demo_sweep
    from controller.report.html import render_page
    from controller.report.load import load_sweep
    from controller.report.plots import all_figures
    from controller.report.summary import analyse, summarise
    from trainer.store import open_store

    t0 = time.perf_counter()
    demo = write_demo_sweep(
        _UnsyncedFileStore(base / "store"), sweep="bench", iterations=_iterations_for(trials)
    )
    print(
        f"\n--- {demo.trials} trials (wrote the sweep in {time.perf_counter() - t0:.1f} s, "
        f"not timed) ---"
    )
    runs = [_end_to_end(demo.url, base / f"report-{k}") for k in range(reps)]
    wall = statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(
        f"  `kubohb report`, end to end (fresh process), median of {reps}: {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU in all its processes (runs: "
        + ", ".join(f"{w:.1f}/{c:.1f}" for w, c in runs)
        + " s wall/CPU)"
    )
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    data = load_sweep(open_store(demo.url), demo.url)
    phases["load (store → rows)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = analyse(data)
    phases["analyse (Spearman, fANOVA in 2 processes, incumbent)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures = all_figures(a)
    phases["figures (2 processes)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    render_page(a, summarise(a), figures, {})
    phases["summary + HTML"] = time.perf_counter() - t0
    print("  phases, once, in this process:")
    for name, secs in phases.items():
        print(f"    {name:<52} {secs:6.2f} s")
    calibrated = _fanova_comparison(data, reps)
    exact_s, mc_s, diff, n = _peer(data)
    print(
        f"  peer: main effects on {n} configs × 64 trees, exact leaf boxes {exact_s:.3f} s, Monte "
        f"Carlo (20 × 200 samples per parameter) {mc_s:.3f} s → exact is {mc_s / exact_s:.1f}× "
        f"the peer's speed; largest difference {diff:.4f} (the Monte Carlo noise)"
    )
    return demo.trials, wall, cpu, calibrated


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report")
    parser.add_argument("--trials", type=int, nargs="+", default=SIZES)
    parser.add_argument("--reps", type=int, default=3, help="runs per size (median)")
    parser.add_argument(
        "--big-reps", type=int, default=1, help=f"runs per size above {TARGET_UP_TO} trials"
    )
    parser.add_argument("--keep", type=Path, default=None, help="write the sweeps and reports here")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; load average: {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="kubohb-bench-report-") as tmp:
        for trials in args.trials:
            base = (args.keep or Path(tmp)) / f"n{trials}"
            reps = args.reps if trials <= TARGET_UP_TO else args.big_reps
            results.append(_one_size(trials, max(1, reps), base))
    print(f"\nload average now: {os.getloadavg()[0]:.1f}")
    ok = True
    for asked, (trials, wall, cpu, calibrated) in zip(args.trials, results, strict=True):
        held = asked <= TARGET_UP_TO
        met = wall <= TARGET_S or cpu <= TARGET_S  # CPU: what it costs whatever else runs here
        ok &= met or not held
        verdict = f"target ≤ {TARGET_S:.0f} s {'met' if met else 'MISSED'}" if held else "no target"
        print(
            f"{trials:>6} trials: {wall:5.1f} s wall, {cpu:5.1f} s CPU → {verdict}; sampled "
            f"pairs within 2 s.e. of exact: {'yes' if calibrated else 'NO'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
