"""Fixtures for the controller's tests; the sweep helpers they share are in tests/sweeps.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def inv_file(tmp_path: Path) -> Path:
    return tmp_path / "invocations.txt"
