"""CI gates of `kubohb report`: the exit codes, the line each gate prints, the baseline rules.

The CLI runs in a fresh process (tests/sweeps.py), as a CI job would run it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from controller.report.budgets import BudgetStats
from controller.report.demo import write_demo_sweep
from controller.report.gates import baseline_gate, exceeds, loss_gate
from tests.report.ci_sweeps import raw_best, write_sweep
from tests.sweeps import kubohb
from trainer.store import FileStore


class Demo(BaseModel):
    url: str
    store_dir: Path
    best: dict[float, float]  # budget → best loss, read from the files


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    store_dir = tmp_path_factory.mktemp("gates")
    d = write_demo_sweep(FileStore(store_dir), sweep="cand", iterations=2, seed=0, curve_points=3)
    return Demo(url=d.url, store_dir=store_dir, best=raw_best(store_dir / "cand"))


def _gate_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("kubohb report: gate ")]


def test_loss_gate_passes_at_or_below_and_fails_above(demo: Demo, tmp_path: Path) -> None:
    top = max(demo.best)
    loss = demo.best[top]
    ok = kubohb("report", demo.url, "--format", "markdown", "--fail-if-loss-above", repr(loss))
    assert ok.returncode == 0, ok.stderr[-2000:]
    (line,) = _gate_lines(ok.stderr)
    assert ": PASS: incumbent it" in line
    assert f"loss {loss!r} at budget {top:g} epochs (the largest budget with a result)" in line
    assert line.endswith(f"is at or below {loss!r}")
    below = repr(loss - 0.001)
    bad = kubohb("report", demo.url, "--json", "--fail-if-loss-above", below)
    assert bad.returncode == 4, bad.stderr[-2000:]
    (line,) = _gate_lines(bad.stderr)
    assert ": FAIL: incumbent it" in line and f"loss {loss!r} at budget {top:g}" in line
    assert line.endswith(f"is above {below}")
    # --json carries the same verdict for a pipeline that parses it
    gates = json.loads(bad.stdout)["gates"]
    assert [(g["gate"], g["passed"], g["loss"], g["budget"]) for g in gates] == [
        ("fail-if-loss-above", False, loss, top)
    ]


def test_baseline_gate_at_the_same_top_budget(demo: Demo, tmp_path: Path) -> None:
    loss = demo.best[81.0]
    base = write_sweep(tmp_path, "base", {"it0-c0-r0": (81.0, loss - 0.05)})
    fail = kubohb("report", demo.url, "--json", "--baseline", base, "--fail-if-worse-by", "0.01")
    assert fail.returncode == 4, fail.stderr[-2000:]
    (line,) = _gate_lines(fail.stderr)
    assert f"FAIL: best loss {loss!r} vs baseline {loss - 0.05!r} at budget 81 epochs:" in line
    assert "worse by 0.05" in line and "more than the 0.01 allowed" in line
    assert "largest budget both have" not in line  # the same top budget: nothing to explain
    ok = kubohb(
        "report",
        demo.url,
        "--json",
        "--baseline",
        base,
        "--fail-if-worse-by",
        "0.1",
        "--fail-if-loss-above",
        "0.9",
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert [line.split(": ")[2] for line in _gate_lines(ok.stderr)] == ["PASS", "PASS"]


def test_baseline_with_smaller_budgets_compares_at_the_largest_shared(
    demo: Demo, tmp_path: Path
) -> None:
    base = write_sweep(
        tmp_path,
        "short",
        {"it0-c0-r0": (1.0, 0.5), "it0-c0-r1": (3.0, 0.01), "it0-c1-r0": (3.0, "failed")},
    )
    proc = kubohb("report", demo.url, "--json", "--baseline", base, "--fail-if-worse-by", "0")
    assert proc.returncode == 4, proc.stderr[-2000:]
    (line,) = _gate_lines(proc.stderr)
    at3 = demo.best[3.0]
    assert f"best loss {at3!r} vs baseline 0.01 at budget 3 epochs" in line
    assert (
        "(the largest budget both have; largest with a result: this sweep 81, baseline 3)" in line
    )


def test_gates_that_cannot_compare_fail(demo: Demo, tmp_path: Path) -> None:
    base = write_sweep(tmp_path, "other", {"t2": (2.0, 0.1)})
    proc = kubohb("report", demo.url, "--json", "--baseline", base, "--fail-if-worse-by", "1")
    assert proc.returncode == 4
    (line,) = _gate_lines(proc.stderr)
    assert "FAIL: no budget has a result in both sweeps (this sweep: 1, 3, 9, 27, 81" in line
    # a sweep where nothing finished with a loss has no incumbent: the loss gate fails
    empty = write_sweep(
        tmp_path, "nothing", {"it0-c0-r0": (1.0, "failed"), "it0-c1-r0": (1.0, "running")}
    )
    proc = kubohb("report", empty, "--json", "--fail-if-loss-above", "1")
    assert proc.returncode == 4, proc.stderr[-2000:]
    (line,) = _gate_lines(proc.stderr)
    assert line.endswith("FAIL: no incumbent (no trial of the sweep has a loss yet)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-if-loss-above", "nan"], "--fail-if-loss-above must be a finite number"),
        (["--fail-if-loss-above", "low"], "--fail-if-loss-above must be a number, not 'low'"),
        (["--baseline", "{demo}", "--fail-if-worse-by", "-0.1"], "must be 0 or more"),
        (["--baseline", "{demo}"], "--baseline and --fail-if-worse-by go together"),
        (["--fail-if-worse-by", "0.1"], "--baseline and --fail-if-worse-by go together"),
        (["--json", "--format", "markdown"], "ask for two formats"),
        (["--baseline", "{empty}", "--fail-if-worse-by", "0"], "--baseline: no readable trial"),
        (["--baseline", "{seconds}", "--fail-if-worse-by", "0"], "budgets are in seconds"),
        (["--baseline", "ftp://host/sweep", "--fail-if-worse-by", "0"], "unsupported store"),
    ],
)
def test_bad_input_exits_2(demo: Demo, tmp_path: Path, args: list[str], message: str) -> None:
    seconds = write_sweep(tmp_path, "secs", {"t1": (81.0, 0.1)}, unit="seconds")
    where = {"demo": demo.url, "empty": str(tmp_path / "nowhere"), "seconds": seconds}
    proc = kubohb("report", demo.url, "--json", *(a.format(**where) for a in args))
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert message in proc.stderr
    assert proc.stdout == ""  # nothing half-printed for CI to parse


def test_unreadable_sweep_url_exits_2(tmp_path: Path) -> None:
    proc = kubohb("report", str(tmp_path / "missing"), "--fail-if-loss-above", "0.5")
    assert proc.returncode == 2
    assert "SWEEP_URL: no readable trial" in proc.stderr and "not the store root" in proc.stderr


def _stats(best: dict[float, float]) -> list[BudgetStats]:
    return [
        BudgetStats(
            budget=b,
            ok=1,
            failed=0,
            running=0,
            wall_seconds=1.0,
            best_loss=loss,
            best_config_id="c",
            best_trial_id="t",
        )
        for b, loss in sorted(best.items())
    ]


def test_gate_rules_without_the_cli() -> None:
    assert not exceeds(0.8 - 0.7, 0.1)  # 0.10000000000000009 is not "more than 0.1"
    assert exceeds(0.1 + 1e-6, 0.1) and not exceeds(0.1, 0.1)
    assert not loss_gate(None, "epochs", 1.0).passed
    g = baseline_gate(
        _stats({1: 0.3, 9: 0.2}),
        _stats({1: 0.4, 9: 0.25}),
        baseline_url="b",
        budget_unit="epochs",
        max_worse=0,
    )
    assert g.passed and g.budget == 9 and "better by 0.04999999999999999" in g.line
    equal = baseline_gate(
        _stats({9: 0.2}), _stats({9: 0.2}), baseline_url="b", budget_unit="epochs", max_worse=0
    )
    assert equal.passed and ": equal, within" in equal.line
    # a budget whose trials all failed has no result: the comparison moves down to one that has
    failed = [
        *_stats({1: 0.3}),
        BudgetStats(
            budget=9,
            ok=0,
            failed=2,
            running=0,
            wall_seconds=0,
            best_loss=None,
            best_config_id=None,
            best_trial_id=None,
        ),
    ]
    g = baseline_gate(
        failed, _stats({1: 0.31, 9: 0.1}), baseline_url="b", budget_unit="epochs", max_worse=0
    )
    assert g.passed and g.budget == 1 and "this sweep 1, baseline 9" in g.line
