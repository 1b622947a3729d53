"""Shared helpers of the trainer tests: tiny trials, fake data sets in the real on-disk formats."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from trainer.contract import FILE_TRIAL, trial_prefix
from trainer.store import Store

# A tiny member of the space: 1 block per stage, 8 filters, stage 2 single-branch (ShakeDrop)
TINY: dict[str, Any] = {
    "nr_residual_blocks_1": 1,
    "nr_residual_blocks_2": 1,
    "nr_residual_blocks_3": 1,
    "initial_filters": 8,
    "widen_factor_1": 1.0,
    "widen_factor_2": 1.5,
    "widen_factor_3": 1.5,
    "res_branches_1": 2,
    "res_branches_2": 1,
    "res_branches_3": 2,
    "batch_size": 32,
    "learning_rate": 0.05,
    "alpha": 0.2,
    "length": 8,
    "death_rate": 0.3,
}


def write_trial(store: Store, trial_id: str = "t1", sweep: str = "s1", **over: Any) -> str:
    """Write trial.json for a tiny synthetic trial; returns its store URL."""
    spec: dict[str, Any] = {
        "sweep": sweep,
        "trial_id": trial_id,
        "config": dict(TINY),
        "budget": 2,
        "budget_unit": "epochs",
        "dataset": "synthetic",
        "data": {"subset": 192, "val_size": 100},
        "seed": 3,
        "store_root": store.root,
        "checkpoint_every_s": 300.0,
    }
    config = over.pop("config", None)
    if config is not None:
        spec["config"].update(config)
    spec.update(over)
    key = f"{trial_prefix(sweep, trial_id)}/{FILE_TRIAL}"
    store.put_json(key, spec)
    return store.url(key)


def write_cifar10(folder: Path, per_batch: int = 20, test: int = 30, seed: int = 0) -> Path:
    """A tiny ``cifar-10-batches-py`` in torchvision's pickle format; returns its folder."""
    rng = np.random.default_rng(seed)
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test if name == "test_batch" else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        with (d / name).open("wb") as f:
            pickle.dump(batch, f)
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    return d


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An idx file of unsigned bytes (magic 0x0803 images, 0x0801 labels)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_fashion(folder: Path, train: int = 50, test: int = 20, gz: bool = False) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    parts = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, test),
    }
    for name, arr in parts.items():
        write_idx(folder / f"{name}{suffix}", arr, gz)
    return folder
