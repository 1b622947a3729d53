"""Reading a (running, partly broken) sweep from the store, and the CLI seam."""

from __future__ import annotations

import argparse
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.report.build import rerun_spec, trainer_command
from controller.report.command import main, register
from controller.report.incumbent import incumbent_trajectory, rank_configs, usage_over_time
from controller.report.load import TrialRow, config_key, load_sweep, state_extras
from trainer.contract import TrialInfo, TrialResult, TrialSpec
from trainer.store import FileStore, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(store: Store, trial_id: str, budget: float, lr: float) -> None:
    spec = TrialSpec(
        sweep="s", trial_id=trial_id, config={"lr": lr}, budget=budget, store_root=store.root
    )
    store.put_json(f"s/trials/{trial_id}/trial.json", spec.model_dump(mode="json"))


def _result(store: Store, trial_id: str, loss: float | None, start_s: float, dur: float) -> None:
    result = TrialResult(
        trial_id=trial_id,
        status="ok" if loss is not None else "failed",
        loss=loss,
        error=None if loss is not None else "diverged",
        info=TrialInfo(train_seconds=dur),
        started_at=T0 + timedelta(seconds=start_s),
        finished_at=T0 + timedelta(seconds=start_s + dur),
    )
    store.put(f"s/trials/{trial_id}/result.json", result.model_dump_json().encode())


@pytest.fixture
def messy(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path)
    _spec(store, "it0-c0-r0", 1, 0.1)
    _result(store, "it0-c0-r0", 0.5, 0, 10)
    _spec(store, "it0-c1-r0", 1, 0.01)
    _result(store, "it0-c1-r0", None, 0, 5)  # failed
    _spec(store, "it0-c0-r1", 3, 0.1)  # running: metrics so far, the last line half-written
    store.put(
        "s/trials/it0-c0-r1/metrics.jsonl",
        b'{"epoch": 1, "step": 10, "train_loss": 0.9, "val_error": 0.6, "lr": 0.1,'
        b' "seconds": 2.0}\n{"epoch": 2, "step": 2',
    )
    _spec(store, "it0-c2-r0", 1, 0.05)
    store.put("s/trials/it0-c2-r0/result.json", b'{"trial_id": "it0-c2-r0", "status": "ok"}')
    store.put("s/trials/orphan/metrics.jsonl", b"")  # no trial.json
    store.put_json("s/state.json", {"trials": {"it0-c0-r0": {"gpu_seconds": 7200, "cost": 1.5}}})
    return store


def test_running_and_broken_trials_are_skipped_with_notes(messy: FileStore) -> None:
    data = load_sweep(FileStore(messy.dir / "s"), "file:///x/s")
    by_id = {t.trial_id: t for t in data.trials}
    assert set(by_id) == {"it0-c0-r0", "it0-c1-r0", "it0-c0-r1"}
    assert by_id["it0-c0-r0"].status == "ok" and by_id["it0-c0-r0"].loss == 0.5
    assert by_id["it0-c1-r0"].status == "failed" and by_id["it0-c1-r0"].loss is None
    running = by_id["it0-c0-r1"]
    assert running.status == "running" and [p.val_error for p in running.curve] == [0.6]
    assert running.config_id == "it0-c0" and running.rung == 1 and running.iteration == 0
    assert data.skipped == 2
    text = " | ".join(data.notes)
    assert "it0-c2-r0: result.json is not a valid TrialResult" in text
    assert "orphan: no trial.json" in text
    assert "it0-c0-r1: 1 unreadable line(s) in metrics.jsonl" in text
    assert data.state is not None and data.state.gpu_hours == 2.0 and data.state.cost == 1.5
    assert data.state.gpu_seconds_by_trial == {"it0-c0-r0": 7200.0}


def test_state_extras_read_defensively() -> None:
    assert state_extras([1, 2]) is None
    top = state_extras({"gpu_seconds": 3600, "cost": {"total": 4.0}, "stop_reason": "budget"})
    assert top is not None and (top.gpu_hours, top.cost, top.stop_reason) == (1.0, 4.0, "budget")
    rows = state_extras({"trials": [{"gpu_seconds": 1800}, {"gpu_seconds": "?"}, "junk"]})
    assert rows is not None and rows.gpu_hours == 0.5 and rows.cost is None
    assert state_extras({"gpu_hours": True}) == state_extras({})  # a bool is not a number


def test_config_key_from_bohb_trial_ids() -> None:
    assert config_key("it3-c12-r1", {}) == ("it3-c12", 3, 1)
    other, it, rung = config_key("custom-7", {"b": 1, "a": 2})
    assert other == config_key("other-8", {"a": 2, "b": 1})[0] and it is None and rung is None


def _row(trial_id: str, budget: float, loss: float | None, finish_s: float) -> TrialRow:
    return TrialRow(
        trial_id=trial_id,
        config_id=trial_id.rsplit("-r", 1)[0],
        iteration=0,
        rung=0,
        config={},
        budget=budget,
        budget_unit="epochs",
        status="ok" if loss is not None else "failed",
        loss=loss,
        error=None,
        started_at=T0 + timedelta(seconds=finish_s - 1),
        finished_at=T0 + timedelta(seconds=finish_s),
        params=None,
        train_seconds=1.0,
        wall_seconds=None,
        curve=[],
        spec={},
    )


def test_incumbent_prefers_bigger_budgets_then_lower_loss() -> None:
    rows = [
        _row("it0-c0-r0", 1, 0.5, 1),
        _row("it0-c1-r0", 1, 0.3, 2),  # better, same budget: new incumbent
        _row("it0-c2-r0", 1, 0.4, 3),  # worse: no
        _row("it0-c1-r1", 3, 0.45, 4),  # bigger budget, even if worse: new incumbent
        _row("it0-c3-r0", 1, 0.1, 5),  # better but smaller budget: no
        _row("it0-c1-r2", 9, None, 6),  # failed: no
    ]
    assert [p.trial_id for p in incumbent_trajectory(rows)] == [
        "it0-c0-r0",
        "it0-c1-r0",
        "it0-c1-r1",
    ]
    ranked = rank_configs(rows)
    assert [c.config_id for c in ranked][:2] == ["it0-c1", "it0-c3"]
    assert ranked[0].loss_per_budget == {1.0: 0.3, 3.0: 0.45}
    use = usage_over_time(rows, {"it0-c1-r1": 1800.0})
    assert max(u.running for u in use) == 1 and use[-1].running == 0
    assert use[-1].budget_used == 1 + 1 + 1 + 3 + 1 + 9
    assert use[-1].gpu_hours == 0.5 and use[-1].train_hours == pytest.approx(6 / 3600)


def test_cli_seam_and_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="kubohb")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "s3://b/p/sweep", "--json", "--endpoint-url", "http://x"])
    assert (args.sweep_url, args.json, args.endpoint_url, args.out) == (
        "s3://b/p/sweep",
        True,
        "http://x",
        None,
    )
    assert callable(args.func)
    assert main([str(tmp_path), "--json"]) == 2  # bad input: not a sweep folder
    captured = capsys.readouterr()
    assert "no readable trial" in captured.err and "not the store root" in captured.err
    assert captured.out == ""  # nothing half-printed for CI to parse


def test_report_of_a_sweep_that_has_barely_started(messy: FileStore, tmp_path: Path) -> None:
    """Too little data for any analysis: the page still builds and says so, nothing crashes."""
    out = tmp_path / "out"
    assert main([(messy.dir / "s").as_uri(), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "not enough data" in page and "it0-c2-r0: result.json is not a valid" in page
    assert "figure1_loss_over_time.png" in page and "importance_by_budget.png" not in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == {"total": 3, "ok": 1, "failed": 1, "running": 1, "skipped": 2}
    assert [i["note"] for i in summary["importance"]] == ["not enough data (1 < 10 configs)"]
    # each analysis with nothing to show says what it waits for; those with data say nothing
    waiting = summary["waiting"]
    assert waiting == {
        "correlation": "finished trials on two budgets (promotions bring them)",
        "importance": "10 configurations with a loss on one budget",
        "curves": "a trial with two validation errors in its metrics.jsonl",
    }
    for why in waiting.values():
        assert f"Waiting for {why}." in page


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1.0, 3.0, 9.0]), st.one_of(st.none(), st.floats(0, 1))),
        min_size=1,
        max_size=30,
    )
)
def test_incumbent_properties(results: list[tuple[float, float | None]]) -> None:
    rows = [_row(f"it0-c{i}-r0", b, loss, i + 1) for i, (b, loss) in enumerate(results)]
    traj = incumbent_trajectory(rows)
    ranked = rank_configs(rows)
    if not ranked:
        assert traj == []
        return
    for prev, cur in itertools.pairwise(traj):  # budgets never shrink; same budget: loss drops
        assert cur.budget > prev.budget or (cur.budget == prev.budget and cur.loss < prev.loss)
    assert (traj[-1].budget, traj[-1].loss) == (ranked[0].budget, ranked[0].loss)


def test_rerun_command_from_spec_yaml() -> None:
    spec = (
        "trainer:\n  command: [python, -m, trainer.synthetic]\n  env: {A_B: '1 2', API_TOKEN: x}\n"
    )
    assert trainer_command(spec) == "A_B='1 2' python -m trainer.synthetic"
    assert trainer_command(None) == trainer_command("not: [valid") == "python -m trainer"


def test_the_rerun_of_a_continued_promotion_trains_from_scratch(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    _spec(store, "it0-c0-r0", 1, 0.1)
    _result(store, "it0-c0-r0", 0.5, 0, 10)
    spec = TrialSpec(
        sweep="s", trial_id="it0-c0-r1", config={"lr": 0.1}, budget=3, store_root=store.root,
        continue_from={"trial_id": "it0-c0-r0", "budget": 1},
    )  # fmt: skip
    store.put_json("s/trials/it0-c0-r1/trial.json", spec.model_dump(mode="json"))
    _result(store, "it0-c0-r1", 0.3, 10, 20)
    data = load_sweep(FileStore(tmp_path / "s"), "file:///x/s")
    [top] = rank_configs(data.trials)[:1]
    rerun = rerun_spec(data, top, 9.0)
    assert rerun is not None and rerun.budget == 9.0 and rerun.continue_from is None
    assert rerun.sweep == "s-rerun" and rerun.config == {"lr": 0.1}
