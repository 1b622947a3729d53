"""Status summary (pure), its rich rendering, the live display, and the JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from controller import log
from controller.backends.base import TrialState
from controller.cli import main
from controller.sweep import timing
from controller.sweep.progress import LiveProgress
from controller.sweep.spec import parse_sweep
from controller.sweep.state import SweepState, TrialPhase, TrialRecord
from controller.sweep.status import render, summarize
from tests.sweeps import synthetic_sweep, write_sweep

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _state() -> SweepState:
    def rec(
        trial_id: str, budget: float, state: TrialPhase, loss: float | None = None
    ) -> TrialRecord:
        return TrialRecord(
            trial_id=trial_id,
            config={"x": 1},
            budget=budget,
            iteration=int(trial_id[2]),
            state=state,
            attempts=1,
            gpus=0,
            deadline_s=100,
            created_at=T0,
            launched_at=T0,
            loss=loss,
        )

    running = rec("it1-c0-r1", 3, "RUNNING")
    running.started_at = T0
    trials = [
        rec("it0-c0-r0", 1, "SUCCEEDED", 0.4),
        rec("it0-c1-r0", 1, "SUCCEEDED", 0.2),
        rec("it0-c1-r1", 3, "SUCCEEDED", 0.3),
        rec("it0-c2-r0", 1, "FAILED"),
        running,
    ]
    return SweepState(
        sweep="s",
        started_at=T0,
        updated_at=T0,
        bohb={},
        trials={t.trial_id: t for t in trials},
        gpu_seconds=360.0,
        cost=360 / 3600 * 2,  # the finished attempts' money, kept by the loop
        gpu_hour_price=2.0,
        budgets=[1, 3, 9],
    )


def test_summary_counts_brackets_running_best_and_spend() -> None:
    s = summarize(_state(), now=T0 + timedelta(seconds=150))
    assert s["trials"] == {"SUCCEEDED": 3, "FAILED": 1, "RUNNING": 1}
    assert s["brackets"][0]["rungs"] == [
        {"budget": 1, "SUCCEEDED": 2, "FAILED": 1, "model_based": 0},
        {"budget": 3, "SUCCEEDED": 1, "model_based": 0},
    ]
    assert s["running"] == [
        {
            "trial_id": "it1-c0-r1",
            "budget": 3,
            "attempt": 1,
            "state": "running",
            "queued_s": 0.0,
            "elapsed_s": 150.0,
            "deadline_s": 100,
            "preemptions": 0,
        }
    ]
    assert (s["preemptions"], s["preempted"]) == (0, [])
    # the largest budget with a result wins, even with a worse loss than budget 1's best
    assert s["incumbent"]["trial_id"] == "it0-c1-r1"
    # 360 s finished + the running attempt clamped to its 100 s deadline
    assert s["gpu_hours"] == pytest.approx(460 / 3600)
    assert s["cost"] == pytest.approx(460 / 3600 * 2)
    json.dumps(s)  # JSON-able as it is


def test_a_queued_trial_shows_its_wait_and_costs_nothing() -> None:
    state = _state()
    queued = state.trials["it1-c0-r1"]
    queued.started_at = None  # launched at T0, the backend still holds it queued
    s = summarize(state, now=T0 + timedelta(seconds=150))
    (row,) = s["running"]
    assert (row["state"], row["queued_s"], row["elapsed_s"]) == ("queued", 150.0, 0.0)
    assert s["queued_hours"] == pytest.approx(150 / 3600)
    assert s["gpu_hours"] == pytest.approx(360 / 3600)  # the finished attempts only
    queued.started_at = T0 + timedelta(seconds=100)  # it started running after 100 s
    (row,) = summarize(state, now=T0 + timedelta(seconds=150))["running"]
    assert (row["state"], row["queued_s"], row["elapsed_s"]) == ("running", 100.0, 50.0)


def test_requeued_attempts_are_counted_as_preemptions_and_shown() -> None:
    state = _state()
    running = state.trials["it1-c0-r1"]
    now = T0
    # the backend's view, poll after poll: a pod preempted twice, each time replaced by its Job
    polls = [("running", None), ("pending", "requeued"), ("running", "started")] * 2
    for phase, change in polls:
        now += timedelta(seconds=10)
        ts = TrialState(trial_id=running.trial_id, phase=phase)
        assert timing.observe(running, ts, now) == change
    assert running.preemptions == 2 and running.started_at == now
    # a pending attempt that never ran is queued, not preempted
    waiting = state.trials["it0-c2-r0"]
    waiting.state, waiting.started_at = "RUNNING", None
    timing.observe(waiting, TrialState(trial_id=waiting.trial_id, phase="pending"), now)
    assert waiting.preemptions == 0
    waiting.state = "FAILED"
    state.trials["it0-c1-r1"].preemptions = 1  # finished, on a later pod
    s = summarize(state, now=now)
    assert s["preemptions"] == 3
    assert s["preempted"] == [
        {"trial_id": "it1-c0-r1", "budget": 3, "state": "RUNNING", "preemptions": 2},
        {"trial_id": "it0-c1-r1", "budget": 3, "state": "SUCCEEDED", "preemptions": 1},
    ]
    (row,) = s["running"]
    assert row["preemptions"] == 2
    assert json.loads(json.dumps(s))["preempted"] == s["preempted"]
    out = io.StringIO()
    Console(file=out, width=140).print(render(s))
    text = out.getvalue()
    assert "preemptions 3" in text and "preempted trials" in text
    (line,) = [x for x in text.splitlines() if "it0-c1-r1" in x and "SUCCEEDED" in x]
    assert line.replace("│", " ").split() == ["it0-c1-r1", "3", "SUCCEEDED", "1"]


def test_preemptions_survive_the_state_json_and_default_to_zero_in_older_ones() -> None:
    state = _state()
    state.trials["it1-c0-r1"].preemptions = 4
    again = SweepState.model_validate_json(state.model_dump_json())
    assert again.trials["it1-c0-r1"].preemptions == 4
    raw = json.loads(state.model_dump_json())
    for record in raw["trials"].values():
        del record["preemptions"]  # a state.json written before the field
    old = SweepState.model_validate(raw)
    assert {t.preemptions for t in old.trials.values()} == {0}
    assert summarize(old)["preemptions"] == 0


def test_render_and_live_display(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    console.print(render(summarize(_state())))
    text = out.getvalue()
    assert "best so far: loss 0.3000 at budget 3" in text and "it1-c0-r1" in text
    live_out = io.StringIO()
    with LiveProgress(Console(file=live_out, force_terminal=True, width=120), every_s=0) as live:
        live(_state())
    assert "brackets" in live_out.getvalue()
    # given the spec, the live display shows each cap's use too
    raw = synthetic_sweep(tmp_path, stop={"max_iterations": 2, "max_trials": 30})
    spec = parse_sweep(yaml.safe_dump(raw))
    capped = io.StringIO()
    console = Console(file=capped, force_terminal=True, width=120)
    with LiveProgress(console, every_s=0, spec=spec) as live:
        live(_state())
    assert "trials 5 of 30" in capped.getvalue()


def test_log_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    log.setup()
    log.event("trial.lost", logging.WARNING, trial="t", attempts=2)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "trial.lost" and line["level"] == "warning" and line["attempts"] == 2


def test_status_of_a_missing_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no state.json" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["{not json", '{"sweep": "syn"}'])
def test_a_corrupt_state_json_is_named_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    sweep = write_sweep(tmp_path, synthetic_sweep(tmp_path))
    folder = tmp_path / "store" / "syn"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(content)
    for argv in (["status", str(folder)], ["run", str(sweep), "--json"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "state.json" in err and "Traceback" not in err, err
    assert (folder / "state.json").read_text() == content


def test_at_80_columns_every_header_is_whole_and_progress_caps_and_eta_show(
    tmp_path: Path,
) -> None:
    state = _state()
    for phase, tid in (("PENDING", "it1-c1-r0"), ("LOST", "it1-c2-r0"), ("CANCELLED", "it1-c3-r0")):
        t = TrialRecord(
            trial_id=tid, config={"x": 2}, budget=1, iteration=1, state=phase,  # type: ignore[arg-type]
            gpus=0, deadline_s=100, created_at=T0, model_based=True,
        )  # fmt: skip
        state.trials[tid] = t
    queued = TrialRecord(
        trial_id="it1-c4-r0", config={"x": 3}, budget=1, iteration=1, state="RUNNING",
        attempts=2, preemptions=1, gpus=0, deadline_s=100, created_at=T0, launched_at=T0,
    )  # fmt: skip
    state.trials[queued.trial_id] = queued
    raw = synthetic_sweep(
        tmp_path, budget={"unit": "seconds", "min": 100, "max": 300, "eta": 3},
        stop={"max_iterations": 2, "max_gpu_hours": 1.0, "max_cost": 5.0, "max_trials": 40,
              "gpu_hour_price": 2.0},
    )  # fmt: skip
    spec = parse_sweep(yaml.safe_dump(raw))
    progress = {
        "it1-c0-r1": {"epoch": 2.5, "step": 40, "val_error": 0.1234, "images_per_second": 812.0}
    }
    s = summarize(state, now=T0 + timedelta(seconds=150), spec=spec, progress=progress)
    assert s["caps"] == {
        "max_gpu_hours": {"used": pytest.approx(s["gpu_hours"]), "cap": 1.0},
        "max_cost": {"used": pytest.approx(s["cost"]), "cap": 5.0},
        "max_trials": {"used": 9, "cap": 40},
    }
    assert s["eta_s"] is not None and s["eta_s"] > 0 and s["model_based"] == 3
    [running] = [r for r in s["running"] if r["trial_id"] == "it1-c0-r1"]
    assert running["val_error"] == 0.1234 and running["epoch"] == 2.5
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(render(s))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    headers = ["it", "budget", "wait", "run", "ok", "fail", "lost", "stop", "model", "trial",
               "try", "state", "wait s", "run s", "epoch", "val err", "img/s", "pre"]  # fmt: skip
    lines = text.splitlines()
    for h in headers:
        assert any(h in line.split() or f" {h} " in f" {line} " for line in lines), h
    assert "…" not in text  # nothing cut short
    assert "0.1234" in text and "812" in text and "of 40" in text and "eta " in text


def test_status_of_a_sweep_reads_its_caps_and_watch_ends_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 1, "max_trials": 50})
    assert main(["run", str(write_sweep(tmp_path, spec)), "--json"]) == 0
    capsys.readouterr()
    url = str(tmp_path / "store" / "syn")
    assert main(["status", url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["caps"]["max_trials"] == {"used": 13, "cap": 50} and summary["eta_s"] == 0
    # --watch on a sweep that has ended draws it once and returns
    assert main(["status", url, "--watch", "0.05"]) == 0
    assert "of 50" in capsys.readouterr().out
