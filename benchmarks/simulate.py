"""Cluster time: synchronous vs asynchronous promotions on a shared GPU cluster, in virtual time.

``python -m benchmarks.simulate [--seeds N] [--gpus 4 16 64 256] [--jobs N] [--arms ...]``;
``python -m benchmarks simulate`` runs the defaults (10 seeds, 4/16/64/256 GPUs, 2 processes).

The question: how much of the GPU time does each promotion rule spend training, and how fast does
it reach a good configuration? Every arm runs the real scheduler and BOHB through ``run_sweep``
against ``SimulatedBackend`` (virtual time, ``MemoryStore``), on the learning-curve surrogate
``problems.HartmannSeconds`` (MF-Hartmann-6 on the BOHB paper's seconds budgets 400 s .. 3 h,
eta 3):

- ``sync-8``: ``bohb.promotion: sync`` (HpBandSter's synchronous successive halving),
  ``stop.max_iterations: 8``;
- ``async-8``: ``promotion: async`` (the ASHA rule within each bracket), the same 8 brackets;
- ``async-cap``: ``promotion: async``, no iteration limit, ``stop.max_gpu_hours`` = the GPU-hours
  ``sync-8`` used in the same seed (equal GPU-hours);
- ``asha-random-cap``: as ``async-cap`` with ``bohb.random_fraction: 1`` (ASHA, random sampling);
- ``sync-open`` / ``async-open``: no iteration limit, ``stop.deadline`` = ``sync-8``'s wall-clock
  in the same seed (equal wall-clock): BOHB keeps opening brackets and every slot has work, so
  these show what each promotion rule does with a cluster kept full. A GPU-hour cap that binds
  from the start (90 GPU-hours are 1.4 h of 64 GPUs) idles slots for the cap's sake, whatever the
  rule: the open arms, not the capped ones, measure how busy a rule keeps the cluster.

Cluster: ``backend.simulated.gpus`` = ``parallelism`` = the GPU count, pod start 30 s ± 15 s, no
preemptions or crashes, ``poll_interval_s: 30``; seed s is ``bohb.seed``, ``backend.simulated.seed``
and ``trainer.seed`` (the surrogate's noise seed). Seeds 0..N-1, fixed.

Figures per (GPUs, arm), median over seeds with a 95 % bootstrap interval (docs/benchmarks.md has
the definitions): GPU share training and slot occupancy until the last launch, wall-clock hours,
GPU-hours, final regret, time to reach ``sync-8``'s final regret (as a ratio to ``sync-8``'s
wall-clock, inf if never), and the regret of the capped arms against ``sync-8`` (ratio of medians,
one-sided Mann-Whitney p). The exit status is 1 when the ACCEPTANCE block fails.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import mannwhitneyu

from benchmarks.problems import HartmannSeconds, evaluate
from controller.backends.simulated import SimulatedBackend
from controller.sweep.runner import run_sweep
from controller.sweep.spec import parse_sweep
from controller.sweep.state import SweepState, TrialRecord
from controller.sweep.trials import incumbent
from trainer.store.memory import MemoryStore

ARMS = ("sync-8", "async-8", "async-cap", "asha-random-cap", "sync-open", "async-open")
CAPPED = ("async-cap", "asha-random-cap")
OPEN = ("sync-open", "async-open")
REFERENCE = "sync-8"
GPUS = (4, 16, 64, 256)
MAX_BUDGET = 10800.0
BUDGET = {"unit": "seconds", "min": 400, "max": MAX_BUDGET, "eta": 3}  # the BOHB paper's
ITERATIONS = 8
POLL_S = 30
START = datetime(2026, 1, 1, tzinfo=UTC)  # the virtual clock's origin (any fixed moment)
PROBLEM = HartmannSeconds()
# Acceptance (the issue's): async-open's median GPU share training until the last launch at these
# GPU counts, and its median time to sync-8's final regret (ratio to sync-8's wall-clock) at
# ACCEPT_TIME_GPUS.
ACCEPT_ARM = "async-open"
ACCEPT_SHARE_GPUS, ACCEPT_SHARE = (16, 64), 0.95
ACCEPT_TIME_GPUS, ACCEPT_TIME = 64, 0.6
PINNED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class SurrogateObjective:
    """``problems.HartmannSeconds`` as the simulator's ``Objective``: the trial's seed (the sweep's
    ``trainer.seed``) keys the noise, as ``problems.evaluate`` does for every benchmark."""

    def __init__(self, problem: HartmannSeconds = PROBLEM) -> None:
        self.problem = problem

    def loss(self, config: dict[str, Any], budget: float, seed: int) -> float | None:
        return evaluate(self.problem, config, budget, seed)


@dataclass
class ArmResult:
    """One arm in one (GPUs, seed): the raw figures, in virtual seconds from the sweep's start."""

    arm: str
    gpus: int
    seed: int
    reason: str  # the sweep's stop reason
    trials: int
    succeeded: int
    last_launch_s: float
    train_share: float  # slot-seconds training in [0, last launch] / (gpus x last launch)
    held_share: float  # slot-seconds held in [0, last launch] / (gpus x last launch)
    sweep_share: float  # slot-seconds training / (gpus x wall_s): the whole sweep
    wall_s: float  # the whole sweep: start to the tick it stopped
    gpu_hours: float  # the state's gpu_seconds / 3600
    cap_gpu_hours: float | None  # stop.max_gpu_hours, for the capped arms
    max_trial_gpu_hours: float  # the largest charge of one trial
    regret: float  # of the final incumbent
    # (moment the incumbent changed, its regret, its budget), in ended_at order
    trajectory: list[tuple[float, float, float]]
    cpu_s: float  # process CPU seconds this arm took to simulate


def sweep_spec(
    arm: str,
    gpus: int,
    seed: int,
    cap_gpu_hours: float | None = None,
    *,
    timeout_factor: float | None = None,
    deadline_s: float | None = None,
) -> dict[str, Any]:
    """The sweep file of one arm (the store URL is never opened: the sweep gets a MemoryStore).
    ``timeout_factor``: ``trials.timeout_factor`` (None = the spec's default), for the ablation;
    ``deadline_s``: the open arms' ``stop.deadline``."""
    promotion = "sync" if arm.startswith("sync") else "async"
    bohb: dict[str, Any] = {"seed": seed, "promotion": promotion}
    if arm == "asha-random-cap":
        bohb["random_fraction"] = 1
    if arm in CAPPED:
        if cap_gpu_hours is None:
            raise ValueError(f"{arm} needs the GPU-hours of {REFERENCE} (cap_gpu_hours)")
        # the capped arms compare promotion rules at equal GPU-hours: the whole cap is spent,
        # as before the wind-down rule existed (docs/benchmarks.md, "Cluster time")
        stop: dict[str, Any] = {"max_gpu_hours": cap_gpu_hours, "wind_down": False}
    elif arm in OPEN:
        if deadline_s is None:
            raise ValueError(f"{arm} needs the wall-clock of {REFERENCE} (deadline_s)")
        stop = {"deadline": math.ceil(deadline_s)}
    else:
        stop = {"max_iterations": ITERATIONS}
    spec: dict[str, Any] = {
        "name": "sim",
        "space": {"parameters": PROBLEM.parameters},
        "budget": BUDGET,
        "bohb": bohb,
        "stop": stop,
        "parallelism": gpus,
        "poll_interval_s": POLL_S,
        "trainer": {"dataset": "synthetic", "seed": seed},
        "store": {"url": "file:///nonexistent/kubohb-sim"},
        "backend": {
            "type": "simulated",
            "simulated": {
                "gpus": gpus,
                "pod_start_s": 30,
                "pod_start_sd_s": 15,
                "preemptions_per_gpu_hour": 0,
                "crash_probability": 0,
                "seed": seed,
            },
        },
    }
    if timeout_factor is not None:
        spec["trials"] = {"timeout_factor": timeout_factor}
    return spec


def _overlap(start: float, end: float, limit: float) -> float:
    return max(0.0, min(end, limit) - max(start, 0.0))


def run_arm(
    arm: str,
    gpus: int,
    seed: int,
    cap_gpu_hours: float | None = None,
    *,
    timeout_factor: float | None = None,
    deadline_s: float | None = None,
) -> ArmResult:
    """Run one arm's sweep to its end in virtual time and take its figures."""
    cpu0 = time.process_time()
    sweep = sweep_spec(
        arm, gpus, seed, cap_gpu_hours, timeout_factor=timeout_factor, deadline_s=deadline_s
    )
    text = yaml.safe_dump(sweep, sort_keys=False)
    spec = parse_sweep(text, f"<{arm}>")
    store = MemoryStore()
    options = spec.backend.simulated
    backend = SimulatedBackend(
        spec.name, store, options, objective=SurrogateObjective(), start=START
    )
    outcome = run_sweep(spec, text, store=store, backend=backend)
    clock = backend.clock()
    state = outcome.state

    # Slot-seconds within [0, last launch], from the simulator's record of every attempt.
    last = max(a.launched_at for a in backend.history)
    startup = options.startup_s
    training = held = 0.0
    for a in backend.history:
        periods = list(a.periods)
        if a.running_since is not None:  # never the case once the sweep stopped; for safety
            periods.append((a.running_since, clock.elapsed_s))
        for begin, end in periods:
            training += a.slots * _overlap(begin + startup, end, last)
        # each admission holds the slots until its running period ends (or the attempt ends)
        for i, admitted in enumerate(a.admissions):
            if i < len(periods):
                end = periods[i][1]
            else:
                end = a.ended_at if a.ended_at is not None else clock.elapsed_s
            held += a.slots * _overlap(admitted, end, last)
    denominator = gpus * last

    final = incumbent(state)
    if final is None:
        raise RuntimeError(f"{arm} gpus={gpus} seed={seed}: no result at all")
    regret = PROBLEM.regret(final["config"])
    traj = trajectory(state, clock.start)
    if traj[-1][1] != regret:  # the recomputed incumbent must end where the sweep's does
        raise RuntimeError(f"{arm} gpus={gpus} seed={seed}: incumbent trajectory disagrees")
    wall = clock.elapsed_s
    return ArmResult(
        arm=arm,
        gpus=gpus,
        seed=seed,
        reason=outcome.reason,
        trials=len(state.trials),
        succeeded=sum(t.state == "SUCCEEDED" for t in state.trials.values()),
        last_launch_s=last,
        train_share=training / denominator if denominator > 0 else math.nan,
        held_share=held / denominator if denominator > 0 else math.nan,
        sweep_share=backend.totals.slot_s_training / (gpus * wall) if wall > 0 else math.nan,
        wall_s=wall,
        gpu_hours=state.gpu_seconds / 3600.0,
        cap_gpu_hours=cap_gpu_hours,
        max_trial_gpu_hours=max(t.gpu_seconds for t in state.trials.values()) / 3600.0,
        regret=regret,
        trajectory=traj,
        cpu_s=time.process_time() - cpu0,
    )


def trajectory(state: SweepState, start: datetime) -> list[tuple[float, float, float]]:
    """The incumbent (``controller.sweep.trials.incumbent``'s definition: the best loss at the
    largest budget with a result, ties by trial id) recomputed as results arrived, in the order
    of the trials' ``ended_at`` (when the loop took the result): (seconds from start, regret,
    budget) at every change."""
    ok = [t for t in state.trials.values() if t.state == "SUCCEEDED" and t.loss is not None]
    ended = {t.trial_id: t.ended_at or start for t in ok}  # a SUCCEEDED trial has ended_at
    ok.sort(key=lambda t: (ended[t.trial_id], t.trial_id))
    out: list[tuple[float, float, float]] = []
    best: TrialRecord | None = None
    i = 0
    while i < len(ok):
        moment = ended[ok[i].trial_id]
        while i < len(ok) and ended[ok[i].trial_id] == moment:  # one poll: its results at once
            t = ok[i]
            if best is None or (-t.budget, t.loss or 0.0, t.trial_id) < (
                -best.budget,
                best.loss or 0.0,
                best.trial_id,
            ):
                best = t
            i += 1
        assert best is not None
        point = ((moment - start).total_seconds(), PROBLEM.regret(best.config), best.budget)
        if not out or out[-1][1:] != point[1:]:
            out.append(point)
    return out


def time_to(
    traj: Sequence[tuple[float, float, float]], target: float, min_budget: float = 0.0
) -> float:
    """The first moment the incumbent's regret is <= target (inf if never); ``min_budget``: count
    only an incumbent evaluated at that budget or more."""
    return next(
        (at for at, regret, budget in traj if regret <= target and budget >= min_budget), math.inf
    )


def run_seed(
    gpus: int,
    seed: int,
    arms: Sequence[str] = ARMS,
    *,
    timeout_factor: float | None = None,
) -> dict[str, ArmResult]:
    """Every requested arm in one (GPUs, seed); ``sync-8`` always runs (the capped arms' GPU-hours
    and the regret target come from it)."""
    results = {REFERENCE: run_arm(REFERENCE, gpus, seed, timeout_factor=timeout_factor)}
    cap, wall = results[REFERENCE].gpu_hours, results[REFERENCE].wall_s
    for arm in ARMS:
        if arm != REFERENCE and arm in arms:
            results[arm] = run_arm(
                arm,
                gpus,
                seed,
                cap if arm in CAPPED else None,
                timeout_factor=timeout_factor,
                deadline_s=wall if arm in OPEN else None,
            )
    return results


def _job(job: tuple[int, int, tuple[str, ...], float | None]) -> dict[str, ArmResult]:
    gpus, seed, arms, timeout_factor = job
    return run_seed(gpus, seed, arms, timeout_factor=timeout_factor)


# ---- statistics ---------------------------------------------------------------------------------
def _median(values: Sequence[float]) -> float:
    """The median, defined with infinities (the two middle values' mean is inf if one is)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return math.nan
    a, b = xs[(n - 1) // 2], xs[n // 2]
    return a if a == b else (a + b) / 2


def bootstrap_median(values: Sequence[float], n: int = 5000) -> tuple[float, float]:
    """95 % bootstrap interval of the median over seeds (seeds resampled; inf allowed)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(0)
    samples = np.sort(rng.choice(data, size=(n, len(data))), axis=1)
    k = len(data)
    low, high = samples[:, (k - 1) // 2], samples[:, k // 2]
    with np.errstate(invalid="ignore"):
        medians = np.where(low == high, low, (low + high) / 2)
    lo, hi = np.quantile(medians, [0.025, 0.975], method="inverted_cdf")  # no inf - inf
    return float(lo), float(hi)


@dataclass
class Figure:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        return cls(_median(values), *bootstrap_median(values))

    def fmt(self, digits: int = 2, percent: bool = False) -> str:
        def one(x: float) -> str:
            if math.isnan(x):
                return "-"
            if math.isinf(x):
                return "inf"
            return f"{x * 100:.{max(0, digits - 2)}f}%" if percent else f"{x:.{digits}f}"

        return f"{one(self.median)} [{one(self.low)}, {one(self.high)}]"


@dataclass
class Summary:
    """One (GPUs, arm) over the seeds."""

    arm: str
    gpus: int
    seeds: int
    train_share: Figure
    held_share: Figure
    sweep_share: Figure  # GPU-hours training / (GPUs x wall-clock): the whole sweep
    last_launch_h: Figure
    wall_h: Figure
    gpu_hours: Figure
    regret: Figure
    time_ratio: Figure  # time to sync-8's final regret / sync-8's wall-clock
    reached: int  # seeds in which the arm reached sync-8's final regret
    time_ratio_top: Figure  # the same, counting only an incumbent at the largest budget
    reached_top: int
    trials: float  # mean trials per sweep
    reasons: str
    regret_ratio: float | None = None  # median regret / sync-8's median regret
    regret_p: float | None = None  # one-sided Mann-Whitney: the arm's regrets < sync-8's
    cap_slack_h: Figure | None = None  # cap - GPU-hours used, for the capped arms


def summarise(runs: Sequence[dict[str, ArmResult]]) -> dict[tuple[int, str], Summary]:
    """Per (GPUs, arm): medians over seeds, 95 % bootstrap intervals, the tests against sync-8."""
    by: dict[tuple[int, str], list[tuple[ArmResult, ArmResult]]] = {}
    for seed_runs in runs:
        ref = seed_runs[REFERENCE]
        for arm, r in seed_runs.items():
            by.setdefault((r.gpus, arm), []).append((r, ref))
    out: dict[tuple[int, str], Summary] = {}
    for (gpus, arm), pairs in sorted(by.items(), key=lambda kv: (kv[0][0], ARMS.index(kv[0][1]))):
        rs = [r for r, _ in pairs]
        ratios = [time_to(r.trajectory, ref.regret) / ref.wall_s for r, ref in pairs]
        ratios_top = [
            time_to(r.trajectory, ref.regret, MAX_BUDGET) / ref.wall_s for r, ref in pairs
        ]
        reasons: dict[str, int] = {}
        for r in rs:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        s = Summary(
            arm=arm,
            gpus=gpus,
            seeds=len(rs),
            train_share=Figure.of([r.train_share for r in rs]),
            held_share=Figure.of([r.held_share for r in rs]),
            sweep_share=Figure.of([r.sweep_share for r in rs]),
            last_launch_h=Figure.of([r.last_launch_s / 3600 for r in rs]),
            wall_h=Figure.of([r.wall_s / 3600 for r in rs]),
            gpu_hours=Figure.of([r.gpu_hours for r in rs]),
            regret=Figure.of([r.regret for r in rs]),
            time_ratio=Figure.of(ratios),
            reached=sum(math.isfinite(x) for x in ratios),
            time_ratio_top=Figure.of(ratios_top),
            reached_top=sum(math.isfinite(x) for x in ratios_top),
            trials=statistics.fmean(r.trials for r in rs),
            reasons=", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
        )
        if arm != REFERENCE:
            ours = [r.regret for r, _ in pairs]
            theirs = [ref.regret for _, ref in pairs]
            s.regret_ratio = _median(ours) / _median(theirs)
            if len(ours) > 1:
                s.regret_p = float(mannwhitneyu(ours, theirs, alternative="less").pvalue)
        if arm in CAPPED:
            s.cap_slack_h = Figure.of([(r.cap_gpu_hours or 0.0) - r.gpu_hours for r in rs])
        out[(gpus, arm)] = s
    return out


# ---- the report ---------------------------------------------------------------------------------
def _p(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_tables(summaries: dict[tuple[int, str], Summary]) -> None:
    for gpus in sorted({g for g, _ in summaries}):
        rows = [s for (g, _), s in summaries.items() if g == gpus]
        print(
            f"\n{gpus} GPUs (quota = parallelism), {rows[0].seeds} seeds: median [95 % bootstrap "
            "interval] over seeds"
        )
        _table(
            rows,
            [
                ("arm", lambda s: s.arm),
                ("train share <= last launch", lambda s: s.train_share.fmt(3)),
                ("held <= last launch", lambda s: s.held_share.fmt(3)),
                ("train share, whole sweep", lambda s: s.sweep_share.fmt(3)),
                ("last launch h", lambda s: s.last_launch_h.fmt(2)),
                ("wall h", lambda s: s.wall_h.fmt(2)),
                ("GPU-h", lambda s: s.gpu_hours.fmt(1)),
                ("trials", lambda s: f"{s.trials:.0f}"),
                ("stop", lambda s: s.reasons),
            ],
        )
        print()
        _table(
            rows,
            [
                ("arm", lambda s: s.arm),
                ("final regret", lambda s: s.regret.fmt(3)),
                (f"median / {REFERENCE}'s, MW p (less)", _ratio_p),
                (f"t to {REFERENCE} regret / its wall", lambda s: s.time_ratio.fmt(3)),
                ("reached", lambda s: f"{s.reached}/{s.seeds}"),
                ("same, 10800 s incumbents only", lambda s: s.time_ratio_top.fmt(3)),
                ("reached", lambda s: f"{s.reached_top}/{s.seeds}"),
            ],
        )
        for s in rows:
            if s.cap_slack_h is not None:
                print(
                    f"  {s.arm}: cap - GPU-hours used = {s.cap_slack_h.fmt(2)} GPU-h "
                    f"(the cap is {REFERENCE}'s GPU-hours in the same seed)"
                )


Column = tuple[str, Callable[[Summary], str]]


def _table(rows: Sequence[Summary], columns: Sequence[Column]) -> None:
    table = [[name for name, _ in columns]] + [[fn(s) for _, fn in columns] for s in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _ratio_p(s: Summary) -> str:
    if s.regret_ratio is None:
        return "-"
    return f"{s.regret_ratio:.3f}, p={_p(s.regret_p)}"


def acceptance(summaries: dict[tuple[int, str], Summary]) -> bool:
    """Print the ACCEPTANCE block; False when a measured check fails."""
    print("\nACCEPTANCE")
    ok = True
    arm = ACCEPT_ARM
    for gpus in ACCEPT_SHARE_GPUS:
        s = summaries.get((gpus, arm))
        if s is None:
            print(f"  {arm} GPU share training until last launch, {gpus} GPUs: not measured")
            continue
        passed = s.train_share.median >= ACCEPT_SHARE
        ok &= passed
        print(
            f"  {arm} median GPU share training until the last launch at {gpus} GPUs "
            f">= {ACCEPT_SHARE}: {s.train_share.median:.3f} "
            f"[{s.train_share.low:.3f}, {s.train_share.high:.3f}] " + ("PASS" if passed else "FAIL")
        )
    s = summaries.get((ACCEPT_TIME_GPUS, arm))
    if s is None:
        print(f"  {arm} time to {REFERENCE}'s regret, {ACCEPT_TIME_GPUS} GPUs: not measured")
    else:
        passed = s.time_ratio.median <= ACCEPT_TIME
        ok &= passed
        print(
            f"  {arm} median time to {REFERENCE}'s final regret / {REFERENCE}'s wall-clock at "
            f"{ACCEPT_TIME_GPUS} GPUs <= {ACCEPT_TIME}: {s.time_ratio.fmt(3)} "
            + ("PASS" if passed else "FAIL")
            + f" (counting only {MAX_BUDGET:g} s incumbents: {s.time_ratio_top.fmt(3)}, "
            f"reached in {s.reached_top}/{s.seeds} seeds)"
        )
    for gpus, issue in ((16, "74 %"), (64, "31 %")):
        ref = summaries.get((gpus, REFERENCE))
        if ref is not None:
            print(
                f"  {REFERENCE} at {gpus} GPUs: GPU share training until the last launch "
                f"{ref.train_share.median:.3f}, over the whole sweep {ref.sweep_share.median:.3f} "
                f"(the issue measured {issue} over the whole sweep)"
            )
    print("  acceptance:", "PASS" if ok else "FAIL")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--gpus", type=int, nargs="+", default=list(GPUS))
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument(
        "--arms",
        nargs="+",
        default=list(ARMS),
        choices=ARMS,
        help=f"arms to run ({REFERENCE} always runs: the caps and the regret target come from it)",
    )
    parser.add_argument(
        "--timeout-factor",
        type=float,
        default=None,
        help="ablation: trials.timeout_factor of every arm (default: the spec's, 2); the cap's "
        "worst-case reservation is each running trial's deadline",
    )
    parser.add_argument("--out", type=Path, help="also write every run's figures as JSON here")
    args = parser.parse_args(argv)
    arms = tuple(a for a in ARMS if a in args.arms or a == REFERENCE)
    jobs = [(g, seed, arms, args.timeout_factor) for g in args.gpus for seed in range(args.seeds)]
    tf = "default (2)" if args.timeout_factor is None else f"{args.timeout_factor:g}"
    print(
        f"seeds 0..{args.seeds - 1}, GPUs {' '.join(map(str, args.gpus))}, arms {' '.join(arms)}; "
        f"budgets 400..10800 s, eta 3; pod start 30 +- 15 s; poll 30 s; trials.timeout_factor {tf}",
        flush=True,
    )
    started = time.perf_counter()
    if args.jobs <= 1:
        runs = [_job(job) for job in jobs]
    else:
        os.environ.update(PINNED)  # inherited by the spawned workers before they import numpy
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            runs = list(pool.map(_job, jobs))
    elapsed = time.perf_counter() - started
    simulated = sum(r.cpu_s for seed_runs in runs for r in seed_runs.values())
    sweeps = sum(len(seed_runs) for seed_runs in runs)
    summaries = summarise(runs)
    print_tables(summaries)
    print(
        f"\n{sweeps} sweeps, {simulated:.0f} CPU s in the simulations "
        f"({simulated / sweeps:.2f} s per sweep); wall {elapsed:.0f} s with --jobs {args.jobs}"
    )
    if args.out:
        payload = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "runs": [asdict(r) for seed_runs in runs for r in seed_runs.values()],
            "summaries": {f"{g}/{arm}": asdict(s) for (g, arm), s in summaries.items()},
        }
        args.out.write_text(json.dumps(payload, indent=1, default=str))
    return 0 if acceptance(summaries) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
