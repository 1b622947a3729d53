"""Optuna 5 and DEHB 0.1 on the benchmark problems, inside ``.venv-peers`` (``make peers-venv``);
called by ``benchmarks/suite.py`` as a subprocess with one JSON job on stdin, answers JSON on
stdout: {"method": "optuna" | "dehb", "problem": name, "seeds": [...], "total_budget": B,
"budgets": [b0, ..., bmax], "eta": 3}.

Equal total budget, counted as each one trains:
- ``optuna``: ``TPESampler(multivariate=True, seed=seed)`` (``group=True`` where the space has
  conditions, as Optuna advises for define-by-run conditional spaces) with
  ``HyperbandPruner(min_resource=1, max_resource=eta**k, reduction_factor=eta)`` on the steps
  1, eta, eta**2... of the schedule's budgets. A trial *continues* its curve: reaching budget b
  after b' costs b - b' (a pruned trial cost what it trained, the largest budget it reached).
- ``dehb``: DEHB's own ask/tell (its Hyperband brackets of differential evolution); each job
  trains from scratch at its fidelity and costs it, as BOHB's promotions do.
Both stop at the first evaluation that would pass B. The incumbent, for every arm alike: the
config with the best observed (noisy) loss at the largest budget any evaluation reached.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.problems import PROBLEMS, evaluate

warnings.filterwarnings("ignore")
logging.getLogger("optuna").setLevel(logging.ERROR)


class Incumbent:
    """The best observed loss at the largest budget reached so far."""

    def __init__(self) -> None:
        self.budget, self.loss = -math.inf, math.inf
        self.config: dict[str, Any] | None = None

    def see(self, config: dict[str, Any], budget: float, loss: float) -> None:
        if budget > self.budget or (budget == self.budget and loss < self.loss):
            self.budget, self.loss, self.config = budget, loss, dict(config)


def _active(p: dict[str, Any], config: dict[str, Any]) -> bool:
    return all(
        config.get(parent) in values for parent, values in (p.get("active_if") or {}).items()
    )


def _suggest(trial: Any, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Define-by-run: parents come before their children in every problem's list."""
    config: dict[str, Any] = {}
    for p in parameters:
        if not _active(p, config):
            continue
        log = bool(p.get("log", False))
        if p["type"] == "float":
            config[p["name"]] = trial.suggest_float(p["name"], p["low"], p["high"], log=log)
        elif p["type"] == "int":
            config[p["name"]] = trial.suggest_int(p["name"], p["low"], p["high"], log=log)
        else:
            config[p["name"]] = trial.suggest_categorical(p["name"], p["choices"])
    return config


def run_optuna(
    problem: Any, seed: int, total: float, budgets: list[float], eta: int
) -> dict[str, Any]:
    import optuna

    conditional = any(p.get("active_if") for p in problem.parameters)
    sampler = optuna.samplers.TPESampler(multivariate=True, group=conditional, seed=seed)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=eta ** (len(budgets) - 1), reduction_factor=eta
    )
    # HyperbandPruner puts a trial in a bracket by crc32(study_name, trial number); the default
    # name is a fresh uuid, which made every run of the suite give Optuna different figures.
    name = f"{problem.name}-{seed}"
    study = optuna.create_study(sampler=sampler, pruner=pruner, study_name=name)
    best, used, evaluations, opt_s = Incumbent(), 0.0, 0, 0.0
    done = False
    while not done:
        t0 = time.perf_counter()
        trial = study.ask()
        config = _suggest(trial, problem.parameters)
        opt_s += time.perf_counter() - t0
        reached, loss = 0.0, math.nan
        for k, budget in enumerate(budgets):
            if used + budget - reached > total + 1e-9:
                done = True
                break
            used += budget - reached
            reached = budget
            loss = evaluate(problem, config, budget, seed)
            evaluations += 1
            best.see(config, budget, loss)
            t0 = time.perf_counter()
            trial.report(loss, step=eta**k)
            pruned = trial.should_prune()
            opt_s += time.perf_counter() - t0
            if pruned:
                break
        t0 = time.perf_counter()
        if reached == 0.0 or (done and reached < budgets[-1]):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # the budget ran out first
        elif reached < budgets[-1]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, loss)
        opt_s += time.perf_counter() - t0
    return _result(problem, seed, best, evaluations, used, opt_s)


def run_dehb(
    problem: Any, seed: int, total: float, budgets: list[float], eta: int
) -> dict[str, Any]:
    from dehb import DEHB

    from benchmarks.configspace_of import config_space

    cs = config_space(problem.parameters, seed)
    opt = DEHB(
        cs=cs, f=None, dimensions=len(problem.parameters), min_fidelity=budgets[0],
        max_fidelity=budgets[-1], eta=eta, n_workers=1, seed=seed, output_path=tempfile.mkdtemp(),
        save_freq=None,
    )  # fmt: skip
    best, used, evaluations, opt_s = Incumbent(), 0.0, 0, 0.0
    while True:
        t0 = time.perf_counter()
        job = opt.ask()
        opt_s += time.perf_counter() - t0
        fidelity = float(job["fidelity"])
        if used + fidelity > total + 1e-9:
            break
        config = dict(job["config"])
        loss = evaluate(problem, config, fidelity, seed)
        used += fidelity
        evaluations += 1
        best.see(config, fidelity, loss)
        t0 = time.perf_counter()
        opt.tell(job, {"fitness": loss, "cost": fidelity})
        opt_s += time.perf_counter() - t0
    return _result(problem, seed, best, evaluations, used, opt_s)


def _result(
    problem: Any, seed: int, best: Incumbent, evaluations: int, used: float, opt_s: float
) -> dict[str, Any]:
    assert best.config is not None
    return {
        "seed": seed,
        "regret": problem.regret(best.config),
        "evaluations": evaluations,
        "budget_used": used,
        "incumbent_budget": best.budget,
        "optimiser_s_per_eval": opt_s / max(1, evaluations),
    }


def main() -> int:
    job = json.loads(sys.stdin.read())
    run = {"optuna": run_optuna, "dehb": run_dehb}[job["method"]]
    problem = PROBLEMS[job["problem"]]
    out = [
        run(
            problem,
            s,
            float(job["total_budget"]),
            [float(b) for b in job["budgets"]],
            int(job["eta"]),
        )
        for s in job["seeds"]
    ]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
