"""Smoke tests of ``benchmarks/scale.py`` and ``benchmarks/controller.py`` on tiny sweeps: they
finish (the controller benchmark hung once its fake trainer stopped announcing results), and
their figures are consistent with what the sweep did."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.controller import run_controller
from benchmarks.scale import Mark, _ratio, run_k8s, run_quiet, run_sim, tenths


def test_tenths_cut_the_sweep_at_every_tenth_of_its_trials() -> None:
    # 10 trials, one result per tick, 2 ms of CPU per tick
    marks = [
        Mark(0.002 * i, results=i, launched=10, requests=i, running=10 - i) for i in range(1, 11)
    ]
    cut = tenths(marks, 10, "results")
    assert [ticks for _, ticks in cut] == [1] * 10
    assert [ms for ms, _ in cut] == pytest.approx([2.0] * 10)
    by_launch = tenths(marks, 10, "launched")  # all launched in the first tick
    assert [ticks for _, ticks in by_launch] == [1] + [0] * 9
    assert math.isnan(_ratio(by_launch))  # the tenths cannot be told apart
    assert _ratio(cut) == pytest.approx(1.0)


@pytest.mark.timeout(120)
def test_a_small_simulated_sweep_and_its_figures() -> None:
    f = run_sim(300, 30)
    assert f.trials == 300 and f.running == 30
    assert len(f.by_results) == len(f.by_launches) == 10
    assert sum(ticks for _, ticks in f.by_results) <= f.ticks
    assert f.cpu_ms_per_trial > 0 and f.sim_cpu_s > 0
    # every trial has a trial.json and a journal record: bytes written exceed the state's share
    assert f.bytes_per_trial > f.state_bytes_per_trial > 0
    assert f.biggest_key == "state.json" and f.snapshot_mb > 0
    assert f.restart_s > 0 and f.restart_worst_s > 0  # a fresh process rebuilt the sweep twice


@pytest.mark.timeout(120)
def test_quiet_polls_cost_at_most_three_store_requests() -> None:
    polls = run_quiet(20, polls=5)
    assert len(polls) >= 5
    assert max(polls) <= 3


@pytest.mark.timeout(120)
def test_concurrent_launches_against_the_api_emulation() -> None:
    k = run_k8s(trials=20)
    assert k.launches == 20
    assert k.deleted == 0
    assert k.api_requests_per_trial >= 1  # at least the create of each Job


@pytest.mark.timeout(120)
def test_controller_benchmark_finishes_and_reads_only_announced_results(tmp_path: Path) -> None:
    r = run_controller(tmp_path, running=10, trials=60)
    assert r["trials"] == 60
    # a poll reads the results announced in it: at most the fake trainer's tenth of the running
    assert r["last_gets"] <= 10 and r["first_gets"] <= 10
    assert r["keys"] >= 2 * 60  # what a listing poller would read: trial.json + result.json each
