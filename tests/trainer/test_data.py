"""Data readers on files in the real on-disk formats, the seeded split, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.helpers import write_cifar10, write_fashion
from trainer.augment import Augment, mixup
from trainer.contract import DataSource
from trainer.data import (
    DataMissingError,
    load,
    locate,
    read_cifar10,
    read_fashion_mnist,
)
from trainer.store import Store

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_cifar10_pickles_are_read_and_split_nine_to_one(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, per_batch=20, test=30)
    train_x, train_y, test_x, _ = read_cifar10(folder)
    assert train_x.shape == (100, 3, 32, 32) and train_x.dtype == torch.uint8
    assert test_x.shape == (30, 3, 32, 32) and train_y.shape == (100,)
    splits = load("cifar10", DataSource(location=str(tmp_path)))
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (90, 10, 30)
    # the split is a partition of the training images, the same every time (seeded)
    joined = torch.cat([splits.train_x, splits.val_x]).flatten(1)
    assert sorted(map(bytes, joined.numpy())) == sorted(map(bytes, train_x.flatten(1).numpy()))
    again = load("cifar10", DataSource(location=str(tmp_path / "cifar-10-batches-py")))
    assert torch.equal(again.val_x, splits.val_x)
    small = load("cifar10", DataSource(location=str(tmp_path), subset=7, val_size=20, test_size=5))
    assert (len(small.train_y), len(small.val_y), len(small.test_y)) == (7, 20, 5)
    assert torch.equal(small.test_x, splits.test_x[:5])  # the first test images, in file order


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_idx_in_torchvision_layout(tmp_path: Path, gz: bool) -> None:
    write_fashion(tmp_path / "FashionMNIST" / "raw", train=50, test=20, gz=gz)
    splits = load("fashion_mnist", DataSource(location=tmp_path.as_uri()))
    assert splits.channels == 1 and splits.train_x.shape[1:] == (1, 28, 28)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (45, 5, 20)


@pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason="Debian package dataset-fashion-mnist is not installed (make install adds it)",
)
def test_debian_fashion_mnist_package() -> None:
    train_x, train_y, test_x, test_y = read_fashion_mnist(DEBIAN_FASHION)
    assert train_x.shape == (60000, 1, 28, 28) and test_x.shape == (10000, 1, 28, 28)
    assert sorted(torch.unique(train_y).tolist()) == list(range(10))
    assert np.bincount(test_y.numpy()).tolist() == [1000] * 10
    # found on the default search path, split 54k / 6k
    assert locate("fashion_mnist", DataSource(), None, None) == DEBIAN_FASHION
    splits = load("fashion_mnist", DataSource())
    assert (len(splits.train_y), len(splits.val_y)) == (54000, 6000)


def test_missing_data_names_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataMissingError, match=r"data\.location"):
        load("cifar10", DataSource(location=str(tmp_path)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBOHB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataMissingError, match="KUBOHB_DATA_DIR"):
        load("cifar10", DataSource(cache_dir=str(tmp_path / "cache")))


def test_data_under_an_s3_prefix_is_downloaded_once(s3_store: Store, tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "src", per_batch=10, test=10)
    for f in folder.iterdir():
        s3_store.put_file(f, f"datasets/cifar10/cifar-10-batches-py/{f.name}")
    source = DataSource(location=s3_store.url("datasets/cifar10"), cache_dir=str(tmp_path / "c"))
    splits = load("cifar10", source)
    assert len(splits.train_y) + len(splits.val_y) == 50
    s3_store.delete("datasets/cifar10/cifar-10-batches-py/test_batch")  # cached: not needed again
    assert len(load("cifar10", source).test_y) == 10


def test_augmentation_crops_flips_and_cuts_out() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).to(torch.uint8)
    aug = Augment((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), cutout=0, device=torch.device("cpu"), pad=0)
    out = aug.train_batch(x, g)
    for i in range(2):  # no padding: each image is itself or its mirror
        assert torch.equal(out[i], x[i].float()) or torch.equal(out[i], x[i].float().flip(2))
    cut = Augment((0.0,) * 3, (1.0,) * 3, cutout=4, device=torch.device("cpu"), pad=2)
    y = cut.train_batch(torch.full((16, 3, 8, 8), 7, dtype=torch.uint8), g)
    zero = (y == 0).all(dim=1)  # padding and cutout are zeros
    assert y.shape == (16, 3, 8, 8) and zero.any() and not zero.all()
    assert ((y == 0) | (y == 7)).all()


def test_mixup_interpolates_labels_pairwise() -> None:
    g, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    x, y = torch.eye(4).view(4, 1, 2, 2), torch.arange(4)
    mixed, y_a, y_b, lam = mixup(x, y, 1.0, g, rng)
    assert 0 < lam < 1 and torch.equal(y_a, y)
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[y_b])
    assert mixup(x, y, 0.0, g, rng)[3] == 1.0
