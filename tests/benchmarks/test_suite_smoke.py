"""Smoke test of ``benchmarks/suite.py`` with the methods of the product's own venv (the peers'
venvs are the benchmark's, never the tests'): one seed, the equal-budget accounting and the
acceptance lines."""

from __future__ import annotations

import pytest

from benchmarks.suite import main


def test_one_seed_of_the_suite(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["--seeds", "1", "--problems", "conditional_nas", "--methods", "kubohb", "random",
         "--chunks", "1", "--jobs", "1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    rows = {
        line.split()[1]: line.split()
        for line in out.splitlines()
        if line.startswith("conditional_nas ")
    }
    assert set(rows) == {"kubohb", "random"}
    # equal total budget: 10 brackets of 1..27 (eta 3) train 999 epochs; random: 37 full trials
    assert rows["kubohb"][6] == "183" and rows["kubohb"][7] == "999"
    assert rows["random"][6] == "37" and rows["random"][7] == "999"
    assert "conditional_nas: kubohb" in out and "the best peer (random)" in out
    assert rc in (0, 1) and ("suite: PASS" in out) == (rc == 0)
