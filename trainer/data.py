"""Data sets in torchvision's on-disk formats, read into uint8 tensors, and the seeded split.

CIFAR-10: the ``cifar-10-batches-py`` pickles. Fashion-MNIST: idx files, raw or gzip, in
torchvision's ``FashionMNIST/raw`` layout or flat (Debian's ``dataset-fashion-mnist`` installs the
gzip files under /usr/share/datasets/fashion-mnist; their checksums differ from torchvision's, so
they are parsed here rather than handed to torchvision). ``synthetic``: random CIFAR-shaped images
whose class is a noisy prototype, so that a tiny network can learn it (fast tests, benchmarks).

Where a data set is found, in order: ``data.location`` (a directory, or an ``s3://`` prefix
downloaded once into ``cache_dir``), ``$KUBOHB_DATA_DIR``, ``./data``, the cache dir,
``/usr/share/datasets``; then torchvision downloads it into the cache dir if ``data.download``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import torch
from torch import Tensor

from trainer.contract import DataSource
from trainer.store import open_store

SPLIT_SEED = 0  # the authors' manual_seed: every trial of every config sees the same split
SYNTHETIC_TRAIN, SYNTHETIC_TEST = 4000, 250

# per-channel mean/std of the training images, in [0, 255]
CIFAR_MEAN, CIFAR_STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
FASHION_MEAN, FASHION_STD = (72.94,), (90.02,)


class DataMissingError(RuntimeError):
    """The data set is not where the trial says, or cannot be fetched (retriable: exit 75)."""


@dataclass
class Splits:
    """uint8 images (N, C, H, W) and int64 labels of the train / validation / test parts."""

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = 10

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])


# ---------------------------------------------------------------- readers (real on-disk formats)


def read_cifar10(folder: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The five training batches and the test batch of ``cifar-10-batches-py``."""

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        # torchvision's format is a pickle; it is only ever read from the trial's own data source
        with (folder / name).open("rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return data, np.asarray(d[b"labels"], dtype=np.int64)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = batch("test_batch")
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return (
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
    )


def read_idx(path: Path) -> np.ndarray:
    """An idx file (images: magic 0x803, labels: 0x801), raw or gzip-compressed."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataMissingError(f"{path}: not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataMissingError(f"{path}: truncated idx file ({data.size} bytes for shape {dims})")
    return data.reshape(dims)


_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_fashion_mnist(folder: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    paths = [_idx_file(folder, stem) for stem in _FASHION_FILES]
    if any(p is None for p in paths):
        raise DataMissingError(f"{folder}: Fashion-MNIST idx files missing")
    arrays = [read_idx(p) for p in paths if p is not None]
    train_x, train_y, test_x, test_y = arrays
    return (
        torch.from_numpy(train_x.copy()).unsqueeze(1),
        torch.from_numpy(train_y.astype(np.int64)),
        torch.from_numpy(test_x.copy()).unsqueeze(1),
        torch.from_numpy(test_y.astype(np.int64)),
    )


def synthetic(seed: int = 1234) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """CIFAR-shaped images: a per-class smooth prototype plus noise (learnable, deterministic)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.nn.functional.interpolate(
        torch.rand(10, 3, 4, 4, generator=g) * 160 + 48, size=(32, 32), mode="bilinear"
    )
    n = SYNTHETIC_TRAIN + SYNTHETIC_TEST
    y = torch.randint(0, 10, (n,), generator=g)
    x = protos[y] + torch.randn(n, 3, 32, 32, generator=g) * 48
    x = x.clamp(0, 255).to(torch.uint8)
    k = SYNTHETIC_TRAIN
    return x[:k], y[:k], x[k:], y[k:]


# ---------------------------------------------------------------- finding the files


def _cifar_dir(base: Path) -> Path | None:
    for d in (base, base / "cifar-10-batches-py"):
        if (d / "data_batch_1").is_file() and (d / "test_batch").is_file():
            return d
    return None


def _fashion_dir(base: Path) -> Path | None:
    for d in (base, base / "FashionMNIST" / "raw", base / "fashion-mnist", base / "fashion_mnist"):
        if all(_idx_file(d, s) for s in _FASHION_FILES):
            return d
    return None


def default_cache_dir(source: DataSource) -> Path:
    if source.cache_dir:
        return Path(source.cache_dir)
    return Path(os.environ.get("KUBOHB_CACHE_DIR", Path.home() / ".cache" / "kubohb"))


def fetch_prefix(url: str, cache: Path, endpoint_url: str | None, region: str | None) -> Path:
    """Download every object under an s3:// prefix once per pod into the cache."""
    target = cache / "s3" / hashlib.sha256(url.encode()).hexdigest()[:16]
    marker = target / ".complete"
    if marker.is_file():
        return target
    store = open_store(url, endpoint_url=endpoint_url, region=region)
    target.mkdir(parents=True, exist_ok=True)
    if store.download_prefix("", target) == 0 and not any(target.iterdir()):
        raise DataMissingError(f"{url}: no objects under this prefix; upload the data set there")
    marker.touch()
    return target


def _download(dataset: str, cache: Path) -> Path:
    import torchvision  # only when downloading is allowed

    root = cache / "torchvision"
    try:
        if dataset == "cifar10":
            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            torchvision.datasets.CIFAR10(str(root), train=False, download=True)
        else:
            torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataMissingError(
            f"torchvision could not download {dataset} into {root}: {exc}"
        ) from exc
    return root


def locate(dataset: str, source: DataSource, endpoint_url: str | None, region: str | None) -> Path:
    """The folder holding the data set's files; DataMissingError says where it looked."""
    find = _cifar_dir if dataset == "cifar10" else _fashion_dir
    cache = default_cache_dir(source)
    if source.location:
        if source.location.startswith("s3://"):
            base = fetch_prefix(source.location, cache, endpoint_url, region)
        elif source.location.startswith("file://"):
            base = Path(unquote(urlparse(source.location).path))
        else:
            base = Path(source.location)
        found = find(base)
        if found is None:
            raise DataMissingError(
                f"data.location {source.location}: no {dataset} files in torchvision's format "
                "there; fix data.location or upload the data set"
            )
        return found
    candidates = [Path(p) for p in [os.environ.get("KUBOHB_DATA_DIR"), "data"] if p]
    candidates += [cache, cache / "torchvision", Path("/usr/share/datasets")]
    for base in candidates:
        found = find(base)
        if found is not None:
            return found
    if source.download:
        found = find(_download(dataset, cache))
        if found is not None:
            return found
    raise DataMissingError(
        f"{dataset}: not found in {', '.join(map(str, candidates))}; set data.location, "
        "KUBOHB_DATA_DIR, or data.download: true"
    )


# ---------------------------------------------------------------- the split


def load(
    dataset: str, source: DataSource, endpoint_url: str | None = None, region: str | None = None
) -> Splits:
    """Read the data set and split off the validation part (seeded, the same for every trial)."""
    if dataset == "synthetic":
        train_x, train_y, test_x, test_y = synthetic()
        mean = tuple(float(v) for v in train_x.float().mean(dim=(0, 2, 3)))
        std = tuple(float(v) for v in train_x.float().std(dim=(0, 2, 3)))
    else:
        folder = locate(dataset, source, endpoint_url, region)
        try:
            reader = read_cifar10 if dataset == "cifar10" else read_fashion_mnist
            train_x, train_y, test_x, test_y = reader(folder)
        except (OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
            raise DataMissingError(f"{dataset} in {folder}: unreadable ({exc})") from exc
        mean, std = (CIFAR_MEAN, CIFAR_STD) if dataset == "cifar10" else (FASHION_MEAN, FASHION_STD)
    return split(dataset, train_x, train_y, test_x, test_y, mean, std, source)


def split(
    name: str,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    source: DataSource,
) -> Splits:
    n = int(train_x.shape[0])
    val_size = source.val_size or n // 10
    if val_size >= n:
        raise DataMissingError(f"data.val_size {val_size} must be below the {n} training images")
    order = torch.from_numpy(np.random.RandomState(SPLIT_SEED).permutation(n))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if source.subset:
        train_idx = train_idx[: source.subset]
    return Splits(
        name=name,
        train_x=train_x[train_idx].contiguous(),
        train_y=train_y[train_idx].contiguous(),
        val_x=train_x[val_idx].contiguous(),
        val_y=train_y[val_idx].contiguous(),
        test_x=test_x[: source.test_size].contiguous(),
        test_y=test_y[: source.test_size].contiguous(),
        mean=mean,
        std=std,
    )
