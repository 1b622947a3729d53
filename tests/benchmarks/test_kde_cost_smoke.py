"""`python -m benchmarks kde_cost` runs and prints one row of four timings per point count."""

from __future__ import annotations

import pytest

from benchmarks.kde_cost import main


def test_the_kde_cost_benchmark_prints_a_row_per_point_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--repeats", "3", "--points", "16", "64"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split()[0] for r in rows] == ["16", "64"]
    assert all(len(r.split()) == 5 and all(float(x) > 0 for x in r.split()[1:]) for r in rows)
