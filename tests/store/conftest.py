"""``store``: the same behavioural tests run on a directory, on moto and on SeaweedFS."""

from __future__ import annotations

import pytest

from trainer.store import Store


@pytest.fixture(
    params=["file_store", "s3_store", "seaweedfs_store"], ids=["file", "moto", "seaweedfs"]
)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(request.param)
