"""What the peer-comparison benchmarks share: one optimiser run per process (one BLAS thread, a
JSON job on stdin, JSON on stdout) and the bootstrap interval of a ratio of means."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# One core per optimiser process: the figures are "on one core", and it keeps the comparison fair
# on a shared machine.
PINNED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_worker(cmd: list[str], job: dict[str, Any], what: str) -> Any:
    """Run ``cmd`` with ``job`` as JSON on stdin; its stdout parsed as JSON."""
    env = {**os.environ, **PINNED, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        cmd, input=json.dumps(job), capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def bootstrap_ratio(ours: np.ndarray, ref: np.ndarray, n: int = 5000) -> tuple[float, float]:
    """95 % interval of mean(ours) / mean(ref), resampling each side's seeds independently."""
    rng = np.random.default_rng(0)
    a = rng.choice(ours, size=(n, len(ours))).mean(axis=1)
    b = rng.choice(ref, size=(n, len(ref))).mean(axis=1)
    low, high = np.percentile(a / b, [2.5, 97.5])
    return float(low), float(high)
