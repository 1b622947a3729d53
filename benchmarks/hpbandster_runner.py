"""Runs HpBandSter 0.7.4's BOHB inside ``.venv-hpbandster`` (numpy < 2); called by
``benchmarks/optimizers.py`` as a subprocess with one JSON job on stdin, answers JSON on stdout.

HpBandSter's ``Master`` needs a Pyro nameserver and worker threads; with one worker its loop is
sequential, so this re-enacts ``Master.run`` for one worker in-process with HpBandSter's own
``SuccessiveHalving`` iterations and ``BOHB`` config generator (the spec's ``ref_sim.py``
approach): ``get_next_run`` -> evaluate -> ``register_result`` -> ``new_result``. Bracket sizes and
budgets use the code of ``hpbandster/optimizers/bohb.py`` (``get_next_iteration``) verbatim.

Jobs: {"mode": "regret", "problem": name, "seeds": [...], "iterations": n}
      {"mode": "timing", "parameters": [...], "observations": n, "repeats": m, "seed": s}
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import ConfigSpace as CS  # noqa: N817 - the package's own idiom
import numpy as np
from hpbandster.core.dispatcher import Job
from hpbandster.optimizers.config_generators.bohb import BOHB as BOHBGenerator  # noqa: N811
from hpbandster.optimizers.iterations import SuccessiveHalving

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.configspace_of import config_space
from benchmarks.problems import PROBLEMS, evaluate, zela_timing_loss

logging.getLogger("hpbandster").setLevel(logging.ERROR)


def _generator(cs: CS.ConfigurationSpace) -> BOHBGenerator:
    return BOHBGenerator(
        configspace=cs,
        min_points_in_model=None,
        top_n_percent=15,
        num_samples=64,
        random_fraction=1 / 3,
        bandwidth_factor=3,
        min_bandwidth=1e-3,
    )


def run_bohb(problem: Any, seed: int, n_iterations: int) -> dict[str, Any]:
    np.random.seed(seed)  # HpBandSter draws from the global numpy RNG
    cs = config_space(problem.parameters, seed)
    cg = _generator(cs)
    picks: list[bool] = []

    def sampler(budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
        config, info = cg.get_config(budget)
        picks.append(bool(info.get("model_based_pick", False)))
        return config, info

    eta, min_budget, max_budget = 3, problem.min_budget, problem.max_budget
    # hpbandster/optimizers/bohb.py, verbatim
    max_sh_iter = -int(np.log(min_budget / max_budget) / np.log(eta)) + 1
    budgets = max_budget * np.power(eta, -np.linspace(max_sh_iter - 1, 0, max_sh_iter))

    def next_iteration(iteration: int) -> SuccessiveHalving:
        s = max_sh_iter - 1 - (iteration % max_sh_iter)
        n0 = int(np.floor((max_sh_iter) / (s + 1)) * eta**s)
        ns = [max(int(n0 * (eta ** (-i))), 1) for i in range(s + 1)]
        return SuccessiveHalving(
            HPB_iter=iteration,
            num_configs=ns,
            budgets=budgets[(-s - 1) :],
            config_sampler=sampler,
        )

    iterations: list[SuccessiveHalving] = []
    left, opt_seconds, evaluations, used = n_iterations, 0.0, 0, 0.0
    best: tuple[float, dict[str, Any]] | None = None
    while True:
        t0 = time.perf_counter()
        job = None
        for it in iterations:
            if it.is_finished:
                continue
            nxt = it.get_next_run()
            if nxt is not None:
                job = nxt
                break
        opt_seconds += time.perf_counter() - t0
        if job is None:
            if left > 0:
                iterations.append(next_iteration(len(iterations)))
                left -= 1
                continue
            break
        config_id, config, budget = job
        loss = evaluate(problem, config, budget, seed)  # noise keyed by (seed, config, budget)
        evaluations += 1
        used += budget
        if budget == budgets[-1] and (best is None or loss < best[0]):
            best = (loss, config)
        t0 = time.perf_counter()
        j = Job(config_id, config=config, budget=budget, working_directory=".")
        j.result = {"loss": loss, "info": {}}
        j.timestamps = {"submitted": 0.0, "started": 0.0, "finished": 0.0}
        iterations[config_id[0]].register_result(j)
        cg.new_result(j)
        opt_seconds += time.perf_counter() - t0
    assert best is not None
    return {
        "seed": seed,
        "regret": problem.regret(best[1]),
        "evaluations": evaluations,
        "budget_used": used,
        "optimiser_s_per_eval": opt_seconds / evaluations,
        "model_based_fraction": sum(picks) / len(picks),
        "knobs": {
            "min_points_in_model": cg.min_points_in_model,
            "top_n_percent": cg.top_n_percent,
            "num_samples": cg.num_samples,
            "random_fraction": cg.random_fraction,
            "bandwidth_factor": cg.bw_factor,
            "min_bandwidth": cg.min_bandwidth,
        },
    }


def run_timing(
    parameters: list[dict[str, Any]], observations: int, repeats: int, seed: int
) -> dict:
    """Median seconds of get_config + new_result with ``observations`` results at one budget."""
    np.random.seed(seed)
    cs = config_space(parameters, seed)
    cg = _generator(cs)

    def tell(config: dict[str, Any]) -> None:
        loss = zela_timing_loss(CS.Configuration(cs, values=config).get_array())
        j = Job((0, 0, 0), config=config, budget=1.0, working_directory=".")
        j.result = {"loss": loss, "info": {}}
        cg.new_result(j)

    for _ in range(observations):  # pre-fill: prior samples, as the first results would be
        tell(cs.sample_configuration().get_dictionary())
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        config, _info = cg.get_config(1.0)
        tell(config)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "median_s": float(np.median(times)),
        "median_cpu_s": float(np.median(cpu)),
        "observations": observations + repeats,
    }


def main() -> int:
    job = json.loads(sys.stdin.read())
    if job["mode"] == "regret":
        problem = PROBLEMS[job["problem"]]
        out: Any = [run_bohb(problem, seed, job["iterations"]) for seed in job["seeds"]]
    else:
        out = run_timing(job["parameters"], job["observations"], job["repeats"], job["seed"])
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
