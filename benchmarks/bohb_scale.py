"""BOHB with many observations: the bounded model (``max_model_points``) against the unbounded one.

``python -m benchmarks.bohb_scale [--sizes 1000,10000,30000,50000] [--seeds 50] [--jobs 2] ...``;
``python -m benchmarks bohb_scale`` runs the defaults (5-7 minutes on 2 shared cores). Two parts:

(a) **Cost at scale.** ``BOHB(zela2018, 1, 1)`` (one budget: every result feeds the model that is
used, as in a long sweep) is filled with prior samples (``random_fraction=1``; cheap, and the
state is the one any run with that many results would hold) and snapshotted as JSON at each size.
Each snapshot is restored twice with ``random_fraction=1/3``, once with the default bound and once
unbounded (``max_model_points=None``, HpBandSter's model, the peer), and timed over ``--repeats``
ask+tell pairs (median and p95, CPU and wall; the first 5 pairs warm up). Then ``state_dict()``
and ``from_state_dict()`` of the whole optimiser and of its observations alone, the latter against
the per-element NaN/inf -> None conversion the state used before (the peer; the JSON must be the
same, byte for byte, or the benchmark fails).

(b) **Regret effect of a bound that binds.** The bound only changes a fit above its size, which
the benchmark problems (``benchmarks/problems.py``: counting ones 4+4, 8+8, MF-Hartmann-6, 10
brackets, the ``benchmarks.optimizers`` setting) never reach with the default. So they are run
with a bound of 64 and with the smallest one allowed (2 x min_points_in_model: 18, 34, 14 points)
against the unbounded model, seeds 0..49 (fixed before the first run), one worker, each arm in
its own process with one BLAS thread. Printed per problem and bound: mean / median final regret,
the mean ratio bounded / unbounded with a 95 % bootstrap interval, the Mann-Whitney p, how many
runs were identical to the unbounded one, and the share of model-based proposals whose fit was
subsampled.

Nothing is asserted about regret (it is a measurement); the exit status is 1 only if the state
JSON differs from the per-element conversion's or the bounded ask+tell median CPU time exceeds
5 ms at the largest size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from benchmarks.problems import PROBLEMS, evaluate, zela_timing_loss
from benchmarks.workers import bootstrap_ratio, run_worker

WARMUP = 5
TARGET_S = 5e-3  # ask+tell median at the largest size, bounded


# ---- (a) cost at scale (one worker process) ---------------------------------------------------
def _per_element(gen: Any) -> list[dict[str, Any]]:
    """The observations' state as written before it was vectorised (the peer)."""
    return [
        {
            "vectors": [
                [None if math.isnan(v) else v for v in row] for row in o.vectors[: o.n].tolist()
            ],
            "losses": [v if math.isfinite(v) else None for v in o.losses[: o.n].tolist()],
        }
        for o in gen.obs
    ]


def _median_s(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def _ask_tell(opt: Any, space: Any, repeats: int) -> dict[str, float]:
    wall, cpu, model = [], [], []
    for i in range(WARMUP + repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        s = opt.ask()
        opt.tell(s.trial_id, zela_timing_loss(space.encode(s.config)))
        if i >= WARMUP:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            model.append(s.model_based)
    picked = np.array(model)
    prior = np.array(cpu)[~picked]
    return {
        "median_cpu_s": float(np.median(cpu)),
        "p95_cpu_s": float(np.percentile(cpu, 95)),
        "median_s": float(np.median(wall)),
        "p95_s": float(np.percentile(wall, 95)),
        # A prior-sampled ask never touches the model: what is left is BOHB.ask's own work.
        "median_cpu_prior_s": float(np.median(prior)) if len(prior) else math.nan,
        "model_based_share": float(picked.mean()),
    }


def _timing(sizes: list[int], repeats: int, state_repeats: int) -> dict[str, Any]:
    from controller.bohb import BOHB
    from controller.bohb.model import DEFAULT_MAX_MODEL_POINTS, ConfigGenerator
    from controller.bohb.space import SearchSpace

    space = SearchSpace.builtin("zela2018")
    fill = BOHB(space, 1, 1, seed=0, random_fraction=1.0, max_model_points=None)
    out: dict[str, Any] = {"bound": DEFAULT_MAX_MODEL_POINTS, "sizes": {}}
    told = 0
    for n in sorted(sizes):
        while told < n:
            s = fill.ask()
            assert s is not None
            fill.tell(s.trial_id, zela_timing_loss(space.encode(s.config)))
            told += 1
        text = json.dumps(fill.state_dict(), allow_nan=False)
        row: dict[str, Any] = {"state_json_bytes": len(text)}
        for arm, bound in (("bounded", DEFAULT_MAX_MODEL_POINTS), ("unbounded", None)):
            state = json.loads(text)
            state["args"].update(random_fraction=1 / 3, max_model_points=bound)
            row[arm] = _ask_tell(BOHB.from_state_dict(state), space, repeats)
        # The state of an optimiser with n results (what a controller snapshot serialises).
        opt = BOHB.from_state_dict(json.loads(text))
        state = opt.state_dict()
        observations = opt._gen.state_dict()
        same = json.dumps(observations, allow_nan=False) == json.dumps(
            _per_element(opt._gen), allow_nan=False
        )
        empty = ConfigGenerator(space, len(opt.budgets), opt.knobs, 0)

        def load_per_element(g: Any = empty, obs: list[dict[str, Any]] = observations) -> None:
            for o, s_ in zip(g.obs, obs, strict=True):  # what load_state_dict did before
                o.n = 0
                for r, loss in zip(s_["vectors"], s_["losses"], strict=True):
                    vec = np.array([math.nan if v is None else v for v in r], dtype=float)
                    o.append(vec, math.inf if loss is None else float(loss))

        def load(g: Any = empty, obs: list[dict[str, Any]] = observations) -> None:
            for o in g.obs:
                o.n = 0
            g.load_state_dict(obs)

        row["state"] = {
            "state_dict_s": _median_s(opt.state_dict, state_repeats),
            "from_state_dict_s": _median_s(
                lambda st=state: BOHB.from_state_dict(st), state_repeats
            ),
            "observations_state_dict_s": _median_s(opt._gen.state_dict, state_repeats),
            "observations_state_dict_per_element_s": _median_s(
                lambda g=opt._gen: _per_element(g), state_repeats
            ),
            "observations_load_s": _median_s(load, state_repeats),
            "observations_load_per_element_s": _median_s(load_per_element, state_repeats),
            "json_identical": same,
        }
        out["sizes"][str(n)] = row
        print(f"  timed {n} observations", file=sys.stderr, flush=True)
    return out


# ---- (b) regret with a binding bound (worker processes) -----------------------------------------
def _regret_run(problem: Any, bound: int | None, seed: int, n_iterations: int) -> dict[str, Any]:
    from controller.bohb import BOHB
    from controller.bohb.space import SearchSpace

    space = SearchSpace.model_validate({"parameters": problem.parameters})
    opt = BOHB(
        space,
        problem.min_budget,
        problem.max_budget,
        eta=3,
        seed=seed,
        max_iterations=n_iterations,
        max_model_points=bound,
    )
    digest = hashlib.sha256()
    model_based = subsampled = evaluations = 0
    while (s := opt.ask()) is not None:
        digest.update(json.dumps([s.trial_id, s.config]).encode())
        if s.model_based:
            model_based += 1
            summary = opt.summary()  # the model the proposal used: its budget's result count
            n = summary["observations"][opt.budgets.index(summary["model_budget"])]
            subsampled += bound is not None and n > bound
        opt.tell(s.trial_id, evaluate(problem, s.config, s.budget, seed))
        evaluations += 1
    inc = opt.incumbent()
    assert inc is not None and inc.budget == problem.max_budget
    return {
        "seed": seed,
        "regret": problem.regret(inc.config),
        "evaluations": evaluations,
        "model_based": model_based,
        "subsampled": subsampled,
        "trace": digest.hexdigest(),
    }


def _worker(job: dict[str, Any]) -> Any:
    if job["mode"] == "timing":
        return _timing(job["sizes"], job["repeats"], job["state_repeats"])
    problem = PROBLEMS[job["problem"]]
    return [_regret_run(problem, job["bound"], s, job["iterations"]) for s in job["seeds"]]


def _call(job: dict[str, Any]) -> Any:
    return run_worker([sys.executable, "-m", "benchmarks.bohb_scale", "--worker"], job, "worker")


def _min_bound(problem: Any) -> int:
    return 2 * (len(problem.parameters) + 1)  # BOHB's smallest bound: 2 x (d + 1) = 2 x N_min


# ---- orchestration ------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bohb_scale", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,30000,50000", help="observations")
    parser.add_argument("--repeats", type=int, default=100, help="timed ask+tell per size and arm")
    parser.add_argument("--state-repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=50, help="regret seeds 0..N-1")
    parser.add_argument("--iterations", type=int, default=10, help="SH brackets per regret run")
    parser.add_argument("--bounds", default="64,min", help="bounds for (b); min = 2 x N_min")
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--jobs", type=int, default=2, help="regret processes at once")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-regret", action="store_true")
    parser.add_argument("--out", type=Path, help="also write all figures as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        json.dump(_worker(json.loads(sys.stdin.read())), sys.stdout)
        return 0

    started = time.perf_counter()
    summary: dict[str, Any] = {}
    ok = True
    if not args.skip_timing:  # alone, before the regret runs load the machine
        sizes = [int(x) for x in args.sizes.split(",")]
        job = {"mode": "timing", "sizes": sizes, "repeats": args.repeats}
        timing = _call({**job, "state_repeats": args.state_repeats})
        summary["timing"] = timing
        ok &= _report_timing(timing)
    if not args.skip_regret:
        summary["regret"] = _regret(args)
    print(f"wall {time.perf_counter() - started:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))
    print("acceptance (state JSON unchanged, bounded ask+tell <= 5 ms):", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def _ms(x: float) -> str:
    return f"{x * 1e3:.2f}"


def _report_timing(timing: dict[str, Any]) -> bool:
    bound = timing["bound"]
    print(
        f"zela2018, one budget, ask+tell (median / p95 ms, CPU; wall in brackets), "
        f"max_model_points={bound} vs None (unbounded, HpBandSter's model)"
    )
    print(
        f"{'observations':>12} {'bounded':>22} {'unbounded':>22} {'speed-up':>9} "
        f"{'prior-sampled asks':>18}"
    )
    ok = True
    largest = max(timing["sizes"], key=int)
    for n, row in timing["sizes"].items():
        b, u = row["bounded"], row["unbounded"]
        print(
            f"{int(n):>12,} {_ms(b['median_cpu_s']):>7} / {_ms(b['p95_cpu_s']):>6} "
            f"({_ms(b['median_s'])}) {_ms(u['median_cpu_s']):>7} / {_ms(u['p95_cpu_s']):>6} "
            f"({_ms(u['median_s'])}) {u['median_cpu_s'] / b['median_cpu_s']:>8.1f}x "
            f"{_ms(b['median_cpu_prior_s']):>18}"
        )
        if n == largest:
            ok &= b["median_cpu_s"] <= TARGET_S
    print("state (median CPU ms): whole optimiser | observations: vectorised vs per-element (peer)")
    header = f"{'observations':>12} {'state_dict':>11} {'from_state':>11} {'JSON MB':>8} "
    print(header + f"{'obs dump':>9} {'peer':>8} {'obs load':>9} {'peer':>8} {'same JSON':>10}")
    for n, row in timing["sizes"].items():
        s = row["state"]
        print(
            f"{int(n):>12,} {_ms(s['state_dict_s']):>11} {_ms(s['from_state_dict_s']):>11} "
            f"{row['state_json_bytes'] / 1e6:>8.1f} {_ms(s['observations_state_dict_s']):>9} "
            f"{_ms(s['observations_state_dict_per_element_s']):>8} "
            f"{_ms(s['observations_load_s']):>9} {_ms(s['observations_load_per_element_s']):>8} "
            f"{s['json_identical']!s:>10}"
        )
        ok &= s["json_identical"]
    return ok


def _regret(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(range(args.seeds))
    arms: dict[str, list[tuple[str, int | None]]] = {}
    for name in args.problems:
        problem = PROBLEMS[name]
        bounds: list[tuple[str, int | None]] = [("None", None)]
        for b in args.bounds.split(","):
            value = _min_bound(problem) if b == "min" else int(b)
            bounds.append((f"{value}" + (" (min)" if b == "min" else ""), value))
        arms[name] = bounds
    tasks = [
        (name, label, seeds[i::4], bound)
        for name, bounds in arms.items()
        for label, bound in bounds
        for i in range(4)
        if seeds[i::4]
    ]
    base = {"mode": "regret", "iterations": args.iterations}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            (name, label, pool.submit(_call, {**base, "problem": name, "bound": b, "seeds": s}))
            for name, label, s, b in tasks
        ]
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for name, label, fut in futures:
            results.setdefault((name, label), []).extend(fut.result())
    print(
        f"regret with a binding bound: seeds 0..{args.seeds - 1}, {args.iterations} brackets, "
        "one worker; ratio = mean regret bounded / unbounded"
    )
    print(
        f"{'problem':<20} {'bound':>9} {'mean':>8} {'median':>8} {'ratio [95% bootstrap]':>24} "
        f"{'MW p':>6} {'same runs':>9} {'subsampled':>10}"
    )
    out: dict[str, Any] = {}
    for name, bounds in arms.items():
        ref_rows = sorted(results[(name, "None")], key=lambda r: r["seed"])
        ref = np.array([r["regret"] for r in ref_rows])
        for label, _ in bounds:
            rows = sorted(results[(name, label)], key=lambda r: r["seed"])
            regrets = np.array([r["regret"] for r in rows])
            same = sum(r["trace"] == q["trace"] for r, q in zip(rows, ref_rows, strict=True))
            model = sum(r["model_based"] for r in rows)
            share = sum(r["subsampled"] for r in rows) / model if model else 0.0
            entry: dict[str, Any] = {
                "mean": float(regrets.mean()),
                "median": float(np.median(regrets)),
                "identical_runs": same,
                "subsampled_share": share,
                "regrets": regrets.tolist(),
            }
            text = ""
            if label != "None":
                low, high = bootstrap_ratio(regrets, ref)
                p = float(mannwhitneyu(regrets, ref).pvalue)
                ratio = entry["mean"] / float(ref.mean())
                entry.update(ratio=ratio, ratio_ci95=[low, high], mannwhitney_p=p)
                text = f"{ratio:.3f} [{low:.3f}, {high:.3f}]"
            p_text = f"{entry['mannwhitney_p']:.3f}" if "mannwhitney_p" in entry else ""
            print(
                f"{name:<20} {label:>9} {entry['mean']:>8.4f} {entry['median']:>8.4f} "
                f"{text:>24} {p_text:>6} {same:>5}/{len(rows):<3} {share * 100:>9.1f}%"
            )
            out.setdefault(name, {})[label] = entry
        spread = statistics.pstdev(ref.tolist()) / float(ref.mean())
        print(f"{name:<20} unbounded regret sd / mean = {spread:.2f}")
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
