"""One synthetic sweep with known structure (controller/report/demo.py) and its report."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from controller.report.command import main
from controller.report.demo import DemoSweep, write_demo_sweep
from trainer.store import FileStore

ITERATIONS = 10  # two Hyperband cycles: ~20 configs on the top budget, 2 shared by budgets 1 and 81


class BuiltReport(BaseModel):
    demo: DemoSweep
    store_dir: Path
    out: Path
    summary: dict[str, Any]  # what --json printed


@pytest.fixture(scope="session")
def built_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltReport]:
    store_dir = tmp_path_factory.mktemp("store")
    demo = write_demo_sweep(FileStore(store_dir), sweep="planted", iterations=ITERATIONS, seed=0)
    out = tmp_path_factory.mktemp("report")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main([demo.url, "--out", str(out), "--json"])
    assert rc == 0
    yield BuiltReport(
        demo=demo, store_dir=store_dir, out=out, summary=json.loads(stdout.getvalue())
    )
