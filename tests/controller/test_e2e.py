"""Whole sweeps through `kubohb run` (a real process), the local backend and a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import S3Endpoint
from tests.sweeps import (
    invocations,
    kubohb,
    read_state,
    run_json,
    synthetic_sweep,
    write_sweep,
)
from trainer.store import open_store

pytestmark = pytest.mark.slow


def _check_finished_sweep(store_dir: Path | None, state: dict, store_url: str, env: dict) -> None:
    trials = state["trials"]
    assert len(trials) == 17  # budgets 1, 3, 9; brackets 9+3+1 and 3+1
    assert {t["state"] for t in trials.values()} == {"SUCCEEDED"}
    assert sorted({t["budget"] for t in trials.values()}) == [1.0, 3.0, 9.0]
    store = open_store(store_url, endpoint_url=env.get("KUBOHB_STORE_ENDPOINT"))
    for trial_id, t in trials.items():
        result = store.get_json(f"syn/trials/{trial_id}/result.json")
        assert result["loss"] == t["loss"]
        assert store.get_json(f"syn/trials/{trial_id}/trial.json")["budget"] == t["budget"]
        assert b"attempt 1 ended: exit 0" in store.get(f"syn/trials/{trial_id}/trainer.log")
    assert store.exists("syn/spec.yaml")
    best = state["incumbent"]
    assert best["budget"] == 9.0
    assert best["loss"] == min(t["loss"] for t in trials.values() if t["budget"] == 9.0)


def test_sweep_on_the_file_store(tmp_path: Path, inv_file: Path) -> None:
    env = {"KUBOHB_SYNTHETIC_INVOCATIONS": str(inv_file)}
    sweep = write_sweep(tmp_path, synthetic_sweep(tmp_path))
    code, summary = run_json(sweep, env)
    assert code == 0 and summary["stop_reason"] == "max_iterations"
    state = read_state(tmp_path / "store", "syn")
    _check_finished_sweep(tmp_path / "store", state, (tmp_path / "store").as_uri(), {})
    assert set(invocations(inv_file).values()) == {1}  # every trial ran exactly once
    assert summary["incumbent"] == state["incumbent"]
    assert summary["gpu_hours"] == pytest.approx(state["gpu_seconds"] / 3600)

    status = kubohb("status", f"{(tmp_path / 'store').as_uri()}/syn", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["trials"] == {"SUCCEEDED": 17} and shown["incumbent"] == state["incumbent"]
    assert [len(b["rungs"]) for b in shown["brackets"]] == [3, 2]
    human = kubohb("status", str(tmp_path / "store" / "syn"))
    assert human.returncode == 0 and "best so far" in human.stdout

    # Running a finished sweep again only reports it: no trial runs, nothing is written.
    before = (tmp_path / "store" / "syn" / "state.json").read_text()
    code, again = run_json(sweep, env)
    assert code == 0 and again["incumbent"] == state["incumbent"]
    assert set(invocations(inv_file).values()) == {1}
    assert (tmp_path / "store" / "syn" / "state.json").read_text() == before

    # A different search under the same name is refused (exit 2), the old sweep untouched.
    changed = write_sweep(tmp_path, synthetic_sweep(tmp_path, bohb={"seed": 8}), "other.yaml")
    proc = kubohb("run", str(changed))
    assert proc.returncode == 2 and "different space, budget or bohb" in proc.stderr
    assert (tmp_path / "store" / "syn" / "state.json").read_text() == before


def test_sweep_on_s3(
    tmp_path: Path, s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/sweeps"
    spec = synthetic_sweep(
        tmp_path,
        store={"url": url, "endpoint_url": s3_server.endpoint_url, "region": s3_server.region},
        poll_interval_s=0.2,
        parallelism=3,
    )
    env = s3_server.env()
    code, summary = run_json(write_sweep(tmp_path, spec), env)
    assert code == 0, summary
    store = open_store(url, endpoint_url=s3_server.endpoint_url, region=s3_server.region)
    state = store.get_json("syn/state.json")
    _check_finished_sweep(None, state, url, {"KUBOHB_STORE_ENDPOINT": s3_server.endpoint_url})
    status = kubohb(
        "status", f"{url}/syn", "--json", "--endpoint-url", s3_server.endpoint_url, env=env
    )
    assert status.returncode == 0 and json.loads(status.stdout)["trials"] == {"SUCCEEDED": 17}


def test_bad_trials_fail_cleanly_and_lose_nothing(tmp_path: Path, inv_file: Path) -> None:
    faults = {
        "it0-c0-r0": "crash",  # exit 1 without a result: retried (LOST) up to max_attempts
        "it0-c1-r0": "bad",  # exit 2: the trainer rejects the trial, never retried
        "it0-c2-r0": "hang",  # killed at its deadline
        "it0-c3-r0": "garbage",  # result.json that fails validation
        "it0-c4-r0": "lost_once",  # first attempt dies (exit 75), the relaunch succeeds
        "it0-c5-r0": "fail",  # a proper failed result
        "it0-c6-r0": "result_dir",  # exit 0, and a directory where result.json belongs
    }
    env = {
        "KUBOHB_SYNTHETIC_INVOCATIONS": str(inv_file),
        "KUBOHB_SYNTHETIC_FAULTS": json.dumps(faults),
    }
    spec = synthetic_sweep(
        tmp_path, stop={"max_iterations": 1}, parallelism=3, trials={"timeout_s": 6}
    )
    code, summary = run_json(write_sweep(tmp_path, spec), env)
    assert code == 0, summary
    trials = read_state(tmp_path / "store", "syn")["trials"]
    errors = {t: trials[t]["error"] for t in faults}
    assert errors["it0-c0-r0"].startswith("lost 3 time(s), last: exited without a result")
    assert errors["it0-c1-r0"].startswith("trainer rejected the trial (exit code 2)")
    assert errors["it0-c2-r0"] == "deadline exceeded (6 s)"
    assert errors["it0-c3-r0"].startswith("invalid result.json")
    assert errors["it0-c5-r0"] == "config asked to fail"
    assert errors["it0-c6-r0"].startswith(
        # a relaunch finds the directory too, and exits as the real trainer does on a store error
        "lost 3 time(s), last: exited (exit code 75) but its result.json could not be read: "
    ), errors["it0-c6-r0"]
    assert errors["it0-c6-r0"].endswith("result.json: Is a directory")
    assert trials["it0-c4-r0"]["state"] == "SUCCEEDED" and trials["it0-c4-r0"]["attempts"] == 2
    failed = {t for t, r in trials.items() if r["state"] == "FAILED"}
    assert failed == set(faults) - {"it0-c4-r0"}
    ran = invocations(inv_file)
    assert ran["it0-c0-r0"] == ran["it0-c6-r0"] == 3 and ran["it0-c4-r0"] == 2
    retried = ("it0-c0-r0", "it0-c4-r0", "it0-c6-r0")
    assert all(n == 1 for t, n in ran.items() if t not in retried)
    # everything else finished and was kept; failed configs were never promoted
    # 9 + 3 + 1 trials, the 6 failed ones included
    assert len(trials) == 13 and sum(r["state"] == "SUCCEEDED" for r in trials.values()) == 7
    promoted = {t.rsplit("-", 1)[0] for t, r in trials.items() if r["rung"] > 0}
    assert not promoted & {t.rsplit("-", 1)[0] for t in failed}


@pytest.mark.parametrize(
    ("stop", "reason", "trial_s"),
    [
        ({"max_gpu_hours": 20 / 3600}, "max_gpu_hours", 1),
        ({"max_cost": 20 / 3600 * 3, "gpu_hour_price": 3.0}, "max_cost", 1),
        ({"max_trials": 5}, "max_trials", 1),
        # Trials outlive the deadline, so some are running when it passes whatever the load
        # (with 1 s trials it could pass in the instant between two waves, with none to cancel).
        ({"deadline": 4}, "deadline", 60),
    ],
)
def test_caps_stop_the_sweep_without_overspending(
    tmp_path: Path, stop: dict, reason: str, trial_s: int
) -> None:
    spec = synthetic_sweep(
        tmp_path,
        stop={"max_iterations": 3, **stop},
        trials={"timeout_s": 6 * trial_s},
        parallelism=2,
    )
    env = {"KUBOHB_SYNTHETIC_SLEEP": str(trial_s)}
    code, summary = run_json(write_sweep(tmp_path, spec), env)
    assert code == 3 and summary["stop_reason"] == reason
    state = read_state(tmp_path / "store", "syn")
    trials = state["trials"]
    assert not [t for t in trials.values() if t["state"] in ("LAUNCHED", "RUNNING")]
    assert state["gpu_seconds"] == pytest.approx(sum(t["gpu_seconds"] for t in trials.values()))
    if reason in ("max_gpu_hours", "max_cost"):
        assert 0 < state["gpu_seconds"] <= 20  # accounted device-seconds never pass the cap
        assert state["cost"] == pytest.approx(
            state["gpu_seconds"] / 3600 * stop.get("gpu_hour_price", 0)
        )
    if reason == "max_trials":
        assert len(trials) == 5 and all(t["state"] == "SUCCEEDED" for t in trials.values())
    if reason == "deadline":
        cancelled = [t for t in trials.values() if "cancelled" in (t["error"] or "")]
        assert len(cancelled) == 2, "the deadline should cancel both running trials"
        assert all(t["gpu_seconds"] < 30 for t in cancelled)  # killed, not run to the end
    else:
        assert any(t["state"] == "SUCCEEDED" for t in trials.values())


def test_a_resumed_sweep_takes_the_new_stop_section(tmp_path: Path, inv_file: Path) -> None:
    env = {"KUBOHB_SYNTHETIC_INVOCATIONS": str(inv_file)}
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 1, "gpu_hour_price": 1.0})
    code, first = run_json(write_sweep(tmp_path, spec), env)
    assert code == 0 and first["stop_reason"] == "max_iterations"
    assert first["cost"] == pytest.approx(first["gpu_hours"] * 1.0) and first["cost"] > 0
    spec["stop"] = {"max_iterations": 2, "gpu_hour_price": 10.0}
    code, second = run_json(write_sweep(tmp_path, spec), env)
    assert code == 0 and second["stop_reason"] == "max_iterations"
    assert sum(second["trials"].values()) > sum(first["trials"].values())  # a second bracket ran
    assert set(invocations(inv_file).values()) == {1}  # and the first one's trials did not rerun
    assert second["cost"] == pytest.approx(second["gpu_hours"] * 10.0)  # the new price, for all
    assert read_state(tmp_path / "store", "syn")["cost"] == pytest.approx(second["cost"])


def test_a_capped_sweep_continues_when_the_cap_is_raised(tmp_path: Path, inv_file: Path) -> None:
    env = {"KUBOHB_SYNTHETIC_INVOCATIONS": str(inv_file)}
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 2, "max_trials": 4})
    code, first = run_json(write_sweep(tmp_path, spec), env)
    assert code == 3 and first["stop_reason"] == "max_trials"
    spec["stop"]["max_trials"] = 7
    code, second = run_json(write_sweep(tmp_path, spec), env)
    assert code == 3 and second["trials"] == {"SUCCEEDED": 7}
    assert set(invocations(inv_file).values()) == {1}  # the first four did not run again
    spec["stop"]["max_trials"] = None
    code, third = run_json(write_sweep(tmp_path, spec), env)
    assert code == 0 and third["trials"] == {"SUCCEEDED": 17}
    assert len(invocations(inv_file)) == 17 and set(invocations(inv_file).values()) == {1}


def test_results_not_the_trials_own_or_too_big_are_refused_with_the_reason(
    tmp_path: Path, inv_file: Path
) -> None:
    faults = {
        "it0-c0-r0": "crash",  # exits 1 every time; another trial writes it a loss of 0.0
        "it0-c1-r0": "forge:it0-c0-r0",
        "it0-c2-r0": "huge_info",  # the trainer itself turns it into a failure
        "it0-c3-r0": "huge_result",  # written raw: the controller's cap refuses it
        "it0-c4-r0": "long_error",
    }
    env = {
        "KUBOHB_SYNTHETIC_INVOCATIONS": str(inv_file),
        "KUBOHB_SYNTHETIC_FAULTS": json.dumps(faults),
    }
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 1}, parallelism=3)
    code, summary = run_json(write_sweep(tmp_path, spec), env)
    assert code == 0, summary
    trials = read_state(tmp_path / "store", "syn")["trials"]
    victim = trials["it0-c0-r0"]
    assert victim["state"] == "FAILED" and victim["loss"] is None  # the forgery never counted
    assert victim["error"].startswith("lost 3 time(s), last: exited ("), victim["error"]
    assert "its result.json was rejected: it carries another trial's token" in victim["error"]
    assert trials["it0-c1-r0"]["state"] == "SUCCEEDED"  # the forger's own result is its own
    assert trials["it0-c2-r0"]["error"].startswith("result.json would be 2,097,")
    assert trials["it0-c3-r0"]["state"] == "FAILED"
    assert trials["it0-c3-r0"]["error"].startswith("result.json too large: ")
    assert "more than the 1,048,576 bytes" in trials["it0-c3-r0"]["error"]
    long_error = trials["it0-c4-r0"]["error"]
    assert long_error.startswith("diverged: eee") and long_error.endswith(
        "(100,010 characters; all of it in result.json)"
    )
    assert len(long_error) < 2100
    # the state stays small: no info, no 2 MB anything, in the snapshot or the journal
    files = (tmp_path / "store" / "syn").glob("journal/*.json")
    assert max(p.stat().st_size for p in [*files, tmp_path / "store/syn/state.json"]) < 100_000
    assert all("info" not in t for t in trials.values())
