"""``store``: the same behavioural tests run on a directory, on moto, on SeaweedFS and in memory."""

from __future__ import annotations

import pytest

from trainer.store import Store
from trainer.store.memory import MemoryStore


@pytest.fixture
def memory_store() -> Store:
    return MemoryStore("behaviour")


@pytest.fixture(
    params=["file_store", "s3_store", "seaweedfs_store", "memory_store"],
    ids=["file", "moto", "seaweedfs", "memory"],
)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(request.param)
