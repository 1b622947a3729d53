"""Acceptance tests of `kubohb report` on a synthetic sweep with known structure (issue 6)."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from controller.report.correlation import NOT_ENOUGH
from controller.report.demo import IMPORTANT
from tests.report.conftest import BuiltReport
from trainer.contract import TrialSpec


def _raw_losses(sweep_dir: Path) -> dict[float, dict[str, float]]:
    """budget → config id → loss, straight from the files (independent of controller.report)."""
    table: dict[float, dict[str, float]] = {}
    for trial_dir in sorted((sweep_dir / "trials").iterdir()):
        spec = json.loads((trial_dir / "trial.json").read_text())
        result = json.loads((trial_dir / "result.json").read_text())
        if result["status"] == "ok":
            config_id = re.sub(r"-r\d+$", "", spec["trial_id"])
            table.setdefault(float(spec["budget"]), {})[config_id] = result["loss"]
    return table


def test_planted_parameter_ranks_first_at_top_budget(built_report: BuiltReport) -> None:
    top = max(built_report.summary["budgets"])
    imp = next(i for i in built_report.summary["importance"] if i["budget"] == top)
    assert imp["note"] is None
    names = [i["name"] for i in imp["individual"]]
    assert names[0] == IMPORTANT, imp["individual"]
    # the unused parameter explains less than the planted one by a wide margin
    fractions = {i["name"]: i["fraction"] for i in imp["individual"]}
    assert fractions[IMPORTANT] > 3 * fractions["unused"]
    # fractions of variance: individual + pairwise cannot exceed the whole
    total = sum(fractions.values()) + sum(p["fraction"] for p in imp["pairwise"])
    assert 0 < total <= 1 + 1e-9


def test_width_matters_on_small_budgets_only(built_report: BuiltReport) -> None:
    """The demo plants a width effect that fades with the budget; fANOVA must see it at budget 1."""
    by_budget = {i["budget"]: i for i in built_report.summary["importance"]}
    low = {i["name"]: i["fraction"] for i in by_budget[min(by_budget)]["individual"]}
    assert low["width"] > 0.1
    assert sorted(low, key=lambda n: low[n], reverse=True)[:2] == sorted(
        ["lr", "width"], key=lambda n: low[n], reverse=True
    )


def test_correlations_equal_scipy_spearmanr(built_report: BuiltReport) -> None:
    table = _raw_losses(built_report.store_dir / built_report.demo.sweep)
    got = {(c["budget_a"], c["budget_b"]): c for c in built_report.summary["correlations"]}
    assert set(got) == set(combinations(sorted(table), 2))
    numbers = 0
    for (a, b), pair in got.items():
        shared = sorted(table[a].keys() & table[b].keys())
        assert pair["n"] == len(shared)
        if len(shared) < 3:
            continue
        expected = spearmanr([table[a][k] for k in shared], [table[b][k] for k in shared])
        assert pair["rho"] == pytest.approx(expected.statistic, abs=1e-12)
        assert pair["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        numbers += 1
    assert numbers >= 5


def test_pair_with_fewer_than_three_shared_configs_is_not_a_number(
    built_report: BuiltReport,
) -> None:
    few = [c for c in built_report.summary["correlations"] if c["n"] < 3]
    assert few, "the two-cycle demo sweep shares only 2 configs between budgets 1 and 81"
    for pair in few:
        assert pair["rho"] is None and pair["p_value"] is None
        assert pair["note"] == NOT_ENOUGH
    page = (built_report.out / "index.html").read_text()
    for pair in few:
        row = re.search(
            rf"<tr><td>{pair['budget_a']:g}</td><td>{pair['budget_b']:g}</td><td>{pair['n']}</td>"
            r"(.*?)</tr>",
            page,
        )
        assert row is not None
        assert NOT_ENOUGH in row.group(1)
        assert not re.search(r"<td>-?\d\.\d{3}</td>", row.group(1))


def test_incumbent_and_counts(built_report: BuiltReport) -> None:
    s = built_report.summary
    table = _raw_losses(built_report.store_dir / built_report.demo.sweep)
    top = max(table)
    best_id = min(table[top], key=lambda k: table[top][k])
    assert s["incumbent"]["config_id"] == best_id
    assert s["incumbent"]["loss"] == table[top][best_id]
    assert s["incumbent"]["loss_per_budget"][f"{top}"] == table[top][best_id]
    assert s["trials"]["total"] == built_report.demo.trials
    assert s["trials"]["ok"] + s["trials"]["failed"] == built_report.demo.trials
    assert s["train_hours"] > 0
    # GPU-hours, cost and stop reason come from state.json (the demo writes the controller's keys)
    state = json.loads(
        (built_report.store_dir / built_report.demo.sweep / "state.json").read_text()
    )
    assert s["gpu_hours"] == pytest.approx(state["gpu_seconds"] / 3600)
    assert s["cost"] == pytest.approx(state["cost"]) and s["stop_reason"] == "max_iterations"
    assert [t["rank"] for t in s["top"]] == list(range(1, len(s["top"]) + 1))


def test_outputs_and_rerun_command(built_report: BuiltReport) -> None:
    out = built_report.out
    page = (out / "index.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "figure1_loss_over_time.png" in pngs and "correlation_heatmap.png" in pngs
    assert page.count("<img ") == len(pngs)  # every PNG written is shown, embedded
    assert "http://" not in page and "https://" not in page  # viewable offline
    top = max(built_report.summary["budgets"])
    best = built_report.summary["top"][0]
    spec_path = out / "rerun" / f"{best['config_id']}.json"
    spec = TrialSpec.model_validate_json(spec_path.read_text())
    assert spec.budget == top and spec.config == best["config"]
    assert spec.sweep == f"{built_report.demo.sweep}-rerun"
    assert f"python -m trainer --trial rerun/{best['config_id']}.json" in page
    assert (
        json.loads((out / "summary.json").read_text())["incumbent"]
        == built_report.summary["incumbent"]
    )
