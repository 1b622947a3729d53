"""Smoke tests of ``benchmarks/promotion_resume.py`` and ``benchmarks/warm_start.py``: one seed
of every arm, the figures checked against what the schedule and the options say."""

from __future__ import annotations

import pytest

from benchmarks.promotion_resume import ARMS, report, run_seed
from benchmarks.warm_start import run_seed as warm_seed


def test_one_seed_of_every_arm(capsys: pytest.CaptureFixture[str]) -> None:
    runs = run_seed((4, 0))
    assert set(runs) == set(ARMS)
    scratch, resume = runs["scratch-8"], runs["resume-8"]
    assert scratch.trials == resume.trials == 130 and scratch.continued == 0
    # bracket 0 (27 x 400 s, 9 x 1200, 3 x 3600, 1 x 10800): each stage 3 GPU-h from scratch;
    # continued, stages 1..3 train 2/3 of their budget
    assert scratch.by_bracket[0] == pytest.approx(12.0)
    assert resume.by_bracket[0] == pytest.approx(3.0 + 3 * 2.0)
    assert resume.continued == 38 and runs["async-resume-8"].continued == 38
    cap = runs["resume-cap"]
    assert cap.reason == "max_gpu_hours" and cap.gpu_hours <= scratch.gpu_hours
    report([runs], 4)
    out = capsys.readouterr().out
    assert "resume-cap regret at scratch-8's GPU-hours" in out and "bracket 7" in out


def test_one_seed_of_the_warm_start_benchmark() -> None:
    runs = warm_seed((4, 0, 1, 2))
    (cold_regret, cold_first), (warm_regret, warm_first) = runs["cold"], runs["warm"]
    assert warm_first < cold_first  # the earlier sweep's results make a model sooner
    assert cold_regret >= 0 and warm_regret >= 0
