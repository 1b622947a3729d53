"""The workload behind tests/data/bohb_bounded_reference.json, and how it is recorded.

It imports only ``BOHB`` and ``SearchSpace`` so it runs against an old tree too. The reference holds
the suggestions of ``drive(BOHB(SPACE, 1, 1, seed=4), 420)`` made by controller/bohb as of commit
1b461e0, before ``max_model_points`` existed ("today's" behaviour), once per kind of floating-point
arithmetic: np.exp (numpy runs its own SIMD exp on AVX-512 CPUs, glibc's elsewhere) and OpenBLAS's
matmul kernel (chosen by CPU) round differently in the last bits, and over 420 model-based
proposals that is enough to let another candidate win the argmin once (trial 264 on an AVX2-only
AMD EPYC against the recording from an AVX-512 Intel Xeon). ``arithmetic()`` names the kind.

Recording for a new kind of machine (from the repo root)::

    git worktree add /tmp/old1b 1b461e0
    PYTHONPATH=/tmp/old1b .venv/bin/python tests/bohb/bounded_drive.py "CPU, numpy x, OpenBLAS y"

prints one entry for the reference's ``long`` list.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from typing import Any

import numpy as np

from controller.bohb import BOHB
from controller.bohb.space import SearchSpace

SPACE = SearchSpace.model_validate(
    {
        "parameters": [
            {"name": "opt", "type": "categorical", "choices": ["sgd", "adam"]},
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1, "log": True},
            {"name": "momentum", "type": "float", "low": 0, "high": 1,
             "active_if": {"opt": ["sgd"]}},
            {"name": "beta", "type": "float", "low": 0.8, "high": 0.999,
             "active_if": {"opt": ["adam"]}},
            {"name": "layers", "type": "int", "low": 1, "high": 8},
            {"name": "width", "type": "int", "low": 16, "high": 512, "log": True},
            {"name": "act", "type": "categorical", "choices": ["relu", "tanh", "gelu"]},
            {"name": "dropout", "type": "float", "low": 0, "high": 0.5,
             "active_if": {"act": ["relu", "gelu"]}},
        ]
    }
)  # fmt: skip


def loss_of(config: dict[str, Any], told: int) -> float | None:
    """A smooth deterministic loss of the config; every 11th result is a failure."""
    if told % 11 == 0:
        return None
    loss = (math.log10(config["lr"]) + 2.0) ** 2 + (config["layers"] - 5) ** 2 / 16
    loss += (math.log2(config["width"]) - 7) ** 2 / 8 + (config["act"] == "tanh") * 0.3
    loss += (1 - config["momentum"]) ** 2 if config["opt"] == "sgd" else (config["beta"] - 0.9) ** 2
    loss += config.get("dropout", 0.25) * 0.2
    return loss


def drive(opt: BOHB, n: int, workers: int = 3) -> list[dict[str, Any]]:
    """Ask while fewer than `workers` trials run, tell the oldest pending one; `n` suggestions."""
    out: list[dict[str, Any]] = []
    told = 0
    while len(out) < n:
        while len(opt.pending()) < workers and len(out) < n:
            s = opt.ask()
            if s is None:
                break
            out.append({"trial_id": s.trial_id, "config": s.config, "model_based": s.model_based})
        pending = opt.pending()
        if not pending:
            break
        trial_id = pending[0]
        told += 1
        config = next(o["config"] for o in reversed(out) if o["trial_id"] == trial_id)
        opt.tell(trial_id, loss_of(config, told))
    return out


def arithmetic() -> str:
    """A digest of how this machine rounds the KDE's operations: a matmul expansion of squared
    distances and np.exp over the whole range down to the subnormals."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(64, 6)) * 40, rng.normal(size=(512, 6)) * 40
    kernel = a @ b.T
    kernel -= 0.5 * np.einsum("ij,ij->i", a, a)[:, None]
    kernel -= 0.5 * np.einsum("ij,ij->i", b, b)[None, :]
    np.minimum(kernel, 0.0, out=kernel)
    parts = [kernel, np.exp(kernel), np.exp(rng.uniform(-745.0, 1.0, 8192))]
    return hashlib.sha256(b"".join(p.tobytes() for p in parts)).hexdigest()[:16]


def record(machine: str) -> dict[str, Any]:  # pragma: no cover - run by hand, see the docstring
    import controller.bohb

    print(f"controller.bohb from {controller.bohb.__file__}", file=sys.stderr)
    return {
        "machine": machine,
        "arithmetic": arithmetic(),
        "suggestions": drive(BOHB(SPACE, 1, 1, seed=4), 420),
    }


if __name__ == "__main__":  # pragma: no cover
    json.dump(record(sys.argv[1]), sys.stdout)
