"""Smoke test of ``benchmarks/suite.py`` with the methods of the product's own venv (the peers'
venvs are the benchmark's, never the tests'): one seed, the equal-budget accounting and the
acceptance lines."""

from __future__ import annotations

import pytest

from benchmarks.suite import main


def test_one_seed_of_the_suite(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["--seeds", "1", "--problems", "conditional_nas",
         "--methods", "kubohb", "faithful", "random", "--chunks", "1", "--jobs", "1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    rows = {
        line.split()[1]: line.split()
        for line in out.splitlines()
        if line.startswith("conditional_nas ")
    }
    assert set(rows) == {"kubohb", "faithful", "random"}
    assert rows["faithful"][7] == "999"  # faithful is kubohb's own arm, never "the best peer"
    # equal total budget: 10 brackets of 1..27 (eta 3) train 999 epochs; random: 37 full trials
    assert rows["kubohb"][6] == "183" and rows["kubohb"][7] == "999"
    assert rows["random"][6] == "37" and rows["random"][7] == "999"
    assert "conditional_nas: kubohb" in out and "the best peer (random)" in out
    assert rc in (0, 1) and ("suite: PASS" in out) == (rc == 0)


def test_one_seed_of_the_model_choice(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.model_choice import main as choose

    rc = choose(
        ["--seeds", "1", "--problems", "mf_hartmann_6", "--candidates", "rf0", "--jobs", "1"]
    )
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:-1]}
    assert set(rows) == {"faithful", "rf0"} and rows["faithful"][2] == "(1.00)"
    assert rc == 0 and out.splitlines()[-1].startswith("chosen by the rule: ")
