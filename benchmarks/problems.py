"""Offline multi-fidelity benchmark problems (spec §6), numpy only.

This module is imported both by kubohb's benchmark and by the HpBandSter runner in its own venv
(numpy < 2), so it depends on nothing else. A problem gives a search space in kubohb's dict form,
its budget range, a noisy multi-fidelity ``loss`` and the noise-free ``regret`` of a config at the
full fidelity (what "final regret" reports).

Every arm of the benchmark evaluates through ``evaluate``: the noise of a call is drawn from a
generator seeded by (run seed, config, budget), so it does not depend on the order of the calls
or on the arm, and the same config at the same budget in the same seed gets the same value.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CountingOnes:
    """BOHB paper toy (HPOlib1.5): n_cat binary categoricals and n_cont floats in [0, 1].

    loss(x, b) = -(sum(cat) + sum_j mean of int(b) Bernoulli(float_j) draws); normalised regret of
    the noise-free value is 1 - (sum(cat) + sum(float)) / d."""

    n_cat: int
    n_cont: int
    min_budget: float = 9
    max_budget: float = 729

    @property
    def name(self) -> str:
        return f"counting_ones_{self.n_cat}+{self.n_cont}"

    @property
    def parameters(self) -> list[dict[str, Any]]:
        cats = [
            {"name": f"cat_{i}", "type": "categorical", "choices": [0, 1]}
            for i in range(self.n_cat)
        ]
        floats = [
            {"name": f"float_{i}", "type": "float", "low": 0.0, "high": 1.0}
            for i in range(self.n_cont)
        ]
        return cats + floats

    def loss(self, config: dict[str, Any], budget: float, rng: np.random.Generator) -> float:
        draws = int(budget)
        cats = sum(int(config[f"cat_{i}"]) for i in range(self.n_cat))
        conts = sum(rng.binomial(draws, config[f"float_{i}"]) / draws for i in range(self.n_cont))
        return -float(cats + conts)

    def regret(self, config: dict[str, Any]) -> float:
        total = float(sum(int(config[f"cat_{i}"]) for i in range(self.n_cat)))
        total += sum(float(config[f"float_{i}"]) for i in range(self.n_cont))
        return 1.0 - total / (self.n_cat + self.n_cont)


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_MIN = -3.32237


@dataclass(frozen=True)
class MFHartmann6:
    """mf-prior-bench's MFHartmann6 (spec §6.4 b): fidelity z in [100/27, 100], s = log z / log 100,
    alpha' = alpha - bias (1 - s), value = H(x; alpha') + |N(0, 1)| noise (1 - s). Preset "default"
    (bias 0.5, noise 0.1). Regret = H(x; alpha) - f* at full fidelity."""

    bias: float = 0.5
    noise: float = 0.1
    min_budget: float = 100 / 27
    max_budget: float = 100.0
    name: str = "mf_hartmann_6"

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return [{"name": f"x{i}", "type": "float", "low": 0.0, "high": 1.0} for i in range(6)]

    @staticmethod
    def _h(x: np.ndarray, alpha: np.ndarray) -> float:
        inner = np.sum(_H6_A * (x[None, :] - _H6_P) ** 2, axis=1)
        return -float(np.sum(alpha * np.exp(-inner)))

    def loss(self, config: dict[str, Any], budget: float, rng: np.random.Generator) -> float:
        x = np.array([config[f"x{i}"] for i in range(6)], dtype=float)
        s = math.log(budget) / math.log(100.0)
        value = self._h(x, _H6_ALPHA - self.bias * (1 - s))
        return value + abs(float(rng.standard_normal())) * self.noise * (1 - s)

    def regret(self, config: dict[str, Any]) -> float:
        x = np.array([config[f"x{i}"] for i in range(6)], dtype=float)
        return self._h(x, _H6_ALPHA) - _H6_MIN


@dataclass(frozen=True)
class ConditionalNAS:
    """A conditional, mixed space shaped like a NAS space, with a learning-curve objective.

    11 parameters, 5 of them active only for some parent values: the optimiser (0 = SGD with
    ``momentum``, 1 = Adam with ``beta1``), a log learning rate whose best value depends on it,
    1-3 stages with one log width each (``width_2`` for 2 and 3 stages, ``width_3`` for 3), a
    block type (0 basic, 1 bottleneck, 2 shake, with ``shake_ratio``) and dropout. The final
    error (noise-free, in about [0.05, 1]) is a sum of bowls; the best config is SGD, lr 0.1,
    momentum 0.9, 3 stages of width 128, shake blocks at ratio 0.7, dropout 0.3. At budget b (1
    to 27 "epochs") the loss is final + (0.9 - final) exp(-b / tau) + N(0, 0.02 / sqrt b), with
    tau growing with the network's capacity and 1.5x for SGD: big SGD networks look worst at
    small budgets and are best at the full one, so the low-budget ranking partly misleads.
    Regret: the final error minus the best config's. ``noise_floor`` adds noise that does not
    shrink with the budget (``conditional_nas_noisy``: 0.05, about a tenth of the regret range of
    random configurations, so the incumbent's observed loss is often a lucky draw)."""

    min_budget: float = 1.0
    max_budget: float = 27.0
    name: str = "conditional_nas"
    noise_floor: float = 0.0  # extra noise at every budget: the noisy variant's 0.05

    @property
    def parameters(self) -> list[dict[str, Any]]:
        width = {"type": "int", "low": 8, "high": 128, "log": True}
        return [
            {"name": "optimizer", "type": "categorical", "choices": [0, 1]},
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "log": True},
            {"name": "momentum", "type": "float", "low": 0.0, "high": 0.99,
             "active_if": {"optimizer": [0]}},
            {"name": "beta1", "type": "float", "low": 0.5, "high": 0.999,
             "active_if": {"optimizer": [1]}},
            {"name": "n_stages", "type": "int", "low": 1, "high": 3},
            {"name": "width_1", **width},
            {"name": "width_2", **width, "active_if": {"n_stages": [2, 3]}},
            {"name": "width_3", **width, "active_if": {"n_stages": [3]}},
            {"name": "block", "type": "categorical", "choices": [0, 1, 2]},
            {"name": "shake_ratio", "type": "float", "low": 0.0, "high": 1.0,
             "active_if": {"block": [2]}},
            {"name": "dropout", "type": "float", "low": 0.0, "high": 0.8},
        ]  # fmt: skip

    @staticmethod
    def _capacity(config: dict[str, Any]) -> float:
        """Mean over the 3 possible stages of log2(width / 8) / 4 (absent: 0), in [0, 1]."""
        widths = [config.get(f"width_{i}") for i in (1, 2, 3)]
        return sum(math.log2(float(w) / 8) / 4 for w in widths if w is not None) / 3

    def final(self, config: dict[str, Any]) -> float:
        sgd = int(config["optimizer"]) == 0
        best_lr = 0.1 if sgd else 1e-3
        t_lr = min(1.0, ((math.log10(float(config["lr"])) - math.log10(best_lr)) / 1.5) ** 2)
        if sgd:
            t_opt = min(1.0, ((float(config["momentum"]) - 0.9) / 0.5) ** 2)
        else:
            t_opt = 0.1 + min(1.0, ((float(config["beta1"]) - 0.9) / 0.3) ** 2)
        cap = self._capacity(config)
        block = int(config["block"])
        t_block = (
            0.15
            if block == 0
            else 0.06
            if block == 1
            else 0.2 * (float(config["shake_ratio"]) - 0.7) ** 2
        )
        t_drop = (float(config["dropout"]) - 0.3 * cap) ** 2
        return 0.05 + 0.3 * t_lr + 0.1 * t_opt + 0.35 * (1 - cap) ** 2 + t_block + 0.1 * t_drop

    def loss(self, config: dict[str, Any], budget: float, rng: np.random.Generator) -> float:
        final = self.final(config)
        tau = (2.0 + 6.0 * self._capacity(config)) * (1.5 if int(config["optimizer"]) == 0 else 1.0)
        curve = final + (0.9 - final) * math.exp(-budget / tau)
        return curve + float(rng.standard_normal()) * (0.02 / math.sqrt(budget) + self.noise_floor)

    def regret(self, config: dict[str, Any]) -> float:
        return self.final(config) - self.final(_NAS_BEST)


_NAS_BEST = {
    "optimizer": 0, "lr": 0.1, "momentum": 0.9, "n_stages": 3, "width_1": 128, "width_2": 128,
    "width_3": 128, "block": 2, "shake_ratio": 0.7, "dropout": 0.3,
}  # fmt: skip


def noise_rng(seed: int, config: dict[str, Any], budget: float) -> np.random.Generator:
    """The noise generator of one evaluation, a pure function of (seed, config, budget).

    Values are keyed as floats (numpy or Python, int or float alike) and the budget to 9
    significant digits, so HpBandSter's ``729 * 3**-4`` and kubohb's ``729 / 3**4`` agree."""
    key = json.dumps(
        [int(seed), f"{float(budget):.9g}", sorted((k, float(v)) for k, v in config.items())]
    )
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def evaluate(problem: Any, config: dict[str, Any], budget: float, seed: int) -> float:
    """The noisy loss every arm observes."""
    return float(problem.loss(config, budget, noise_rng(seed, config, budget)))


PROBLEMS: dict[str, Any] = {
    p.name: p
    for p in (
        CountingOnes(4, 4),
        CountingOnes(8, 8),
        MFHartmann6(),
        ConditionalNAS(),
        ConditionalNAS(name="conditional_nas_noisy", noise_floor=0.05),
    )
}


def zela_timing_loss(vector: np.ndarray) -> float:
    """A smooth synthetic loss on the [0, 1] encoding, for the ask+tell timing runs."""
    return float(np.sum((np.nan_to_num(vector, nan=0.5) - 0.3) ** 2))


@dataclass(frozen=True)
class HartmannSeconds:
    """A learning-curve surrogate for a seconds budget, on MF-Hartmann-6 (``benchmarks/simulate``).

    A budget of ``b`` training seconds in [min_budget, max_budget] (the BOHB paper's 400 s .. 3 h)
    is MFHartmann6's fidelity ``z = 100 b / max_budget`` (400 s -> 100/27, 10800 s -> 100), so the
    curve, its bias and its noise are MFHartmann6's at that fidelity. A trial's loss must lie in
    [0, 1] (the trial contract), so the value is squashed by the increasing map
    ``loss = clip((value + 3.5) / 4, 0, 1)`` (MFHartmann6's values lie in about [-3.33, 0.4]; the
    clip never binds in practice). ``regret`` is MFHartmann6's noise-free regret at full fidelity,
    on the original scale (H6(x) - f*)."""

    min_budget: float = 400.0
    max_budget: float = 10800.0
    name: str = "hartmann6_seconds"
    base: MFHartmann6 = MFHartmann6()

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return self.base.parameters

    def fidelity(self, budget: float) -> float:
        """MFHartmann6's fidelity z of a seconds budget."""
        return self.base.max_budget * float(budget) / self.max_budget

    def loss(self, config: dict[str, Any], budget: float, rng: np.random.Generator) -> float:
        value = self.base.loss(config, self.fidelity(budget), rng)
        return min(1.0, max(0.0, (value + 3.5) / 4.0))

    def regret(self, config: dict[str, Any]) -> float:
        return self.base.regret(config)
