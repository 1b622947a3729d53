"""The report reads any store: one sweep in moto S3 and in a directory gives the same numbers."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from controller.report.command import main
from controller.report.demo import write_demo_sweep
from tests.servers import S3Endpoint
from trainer.store import FileStore, Store

# ~45 trials on budgets 1, 3, 9: moto is slow, and the numbers' equality is what matters here
SMALL: dict[str, Any] = {
    "iterations": 6,
    "max_budget": 9,
    "seed": 4,
    "curve_points": 3,
    "workers": 4,
}


def _report(url: str, out: Path | None, *extra: str) -> dict[str, Any]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([url, "--json", *(["--out", str(out)] if out else []), *extra]) == 0
    return json.loads(stdout.getvalue())


def _numbers(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s[k] for k in ("incumbent", "correlations", "importance", "trials", "budgets")}


def test_s3_store_report_matches_file_store(
    s3_server: S3Endpoint, s3_store: Store, tmp_path: Path
) -> None:
    demo = write_demo_sweep(s3_store, sweep="s3sweep", **SMALL)
    assert demo.url.startswith("s3://")
    s3 = _report(
        demo.url,
        tmp_path / "s3",
        "--endpoint-url",
        s3_server.endpoint_url,
        "--region",
        s3_server.region,
    )
    local = write_demo_sweep(FileStore(tmp_path / "store"), sweep="s3sweep", **SMALL)
    ref = _report(local.url, None)  # --json alone: the numbers, no page
    assert _numbers(s3) == _numbers(ref)
    assert any(i["note"] is None for i in s3["importance"])  # fANOVA ran on S3-read data
    assert s3["trials"]["total"] == demo.trials
    assert (tmp_path / "s3" / "index.html").stat().st_size > 10_000
