"""`kubohb run --metrics-port`: a Prometheus scrape during a local sweep finds the sweep's trials,
suggestions, spend against its caps and attempts, with values that agree with each other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from controller.sweep.metrics import SweepMetrics
from controller.sweep.spec import parse_sweep
from tests.servers import free_port
from tests.sweeps import REPO, synthetic_sweep, write_sweep


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_a_scrape_during_a_sweep_sees_its_trials_spend_and_caps(tmp_path: Path) -> None:
    spec = synthetic_sweep(tmp_path, stop={"max_iterations": 2, "max_gpu_hours": 1.0})
    port = free_port()
    errors = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", str(write_sweep(tmp_path, spec)),
         "--json", "--metrics-port", str(port)],
        cwd=REPO, env={**os.environ, "KUBOHB_SYNTHETIC_SLEEP": "0.5"},
        stdout=subprocess.DEVNULL, stderr=errors,  # a file: no pipe to fill
    )  # fmt: skip
    seen: list[dict[str, list[tuple[dict[str, str], float]]]] = []
    try:
        end = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < end:
            try:
                m = _scrape(port)
            except OSError:  # not listening yet
                time.sleep(0.1)
                continue
            if any(v > 0 for _, v in m.get("kubohb_trials", [])):
                seen.append(m)
            time.sleep(0.3)
    finally:
        proc.wait(timeout=120)
        errors.close()
    assert proc.returncode == 0, (tmp_path / "stderr").read_text()[-2000:]
    assert len(seen) >= 2, "the sweep ended before two scrapes saw it"
    last = seen[-1]
    trials = {(lb["state"], lb["rung"]): v for lb, v in last["kubohb_trials"]}
    assert all(lb["sweep"] == "syn" for lb, _ in last["kubohb_trials"])
    assert set(r for _, r in trials) <= {"0", "1", "2"}
    kinds = {lb["kind"]: v for lb, v in last["kubohb_suggestions"]}
    assert kinds["model"] + kinds["random"] == sum(trials.values())  # every trial is one or other
    (cap,) = last["kubohb_cap"]
    assert cap[0]["cap"] == "max_gpu_hours" and cap[1] == 3600.0
    (spent,) = last["kubohb_device_seconds"]
    assert 0 <= spent[1] <= 3600.0
    attempts = {lb["phase"]: v for lb, v in last["kubohb_attempts"]}
    assert attempts["running"] + attempts["queued"] <= 2  # parallelism 2

    # the figures move as the sweep goes: more trials done in a later scrape than the first
    def done(m: dict[str, list[tuple[dict[str, str], float]]]) -> float:
        return sum(v for lb, v in m["kubohb_trials"] if lb["state"] == "SUCCEEDED")

    assert done(seen[-1]) >= done(seen[0])
    assert last["kubohb_journal_entries"][0][1] > 0

    # this controller's calls, timed by part and operation
    counts = {(lb["part"], lb["op"]): v for lb, v in last["kubohb_request_seconds_count"]}
    launched = sum(v for (_, _), v in trials.items())
    assert counts[("bohb", "ask")] >= launched > 0
    assert counts[("backend", "launch")] >= launched
    assert counts[("backend", "poll")] > 0 and counts[("store", "put_new")] > 0
    assert all(v == 0 for _, v in last.get("kubohb_request_errors_total", []))
    kinds = {lb["kind"]: v for lb, v in last["kubohb_promotions"]}
    above = sum(v for (_, rung), v in trials.items() if rung != "0")
    assert kinds["continued"] == 0 and 0 <= kinds["from_scratch"] <= above


def test_the_timing_proxy_counts_errors_and_forwards_attributes(tmp_path: Path) -> None:
    spec = parse_sweep(yaml.safe_dump(synthetic_sweep(tmp_path)))
    metrics = SweepMetrics(spec)

    class Target:
        max_iterations = 3

        def ask(self) -> int:
            return 1

        def tell(self, trial_id: str, loss: float) -> None:
            raise ValueError(trial_id)

    target = Target()
    proxy = metrics.wrap("bohb", target)
    assert proxy.ask() == 1 and proxy.max_iterations == 3
    proxy.max_iterations = 5  # the loop lowers BOHB's limit through the proxy
    assert target.max_iterations == 5
    with pytest.raises(ValueError, match="t1"):
        proxy.tell("t1", 0.5)
    registry = metrics.registry
    labels = {"sweep": "syn", "part": "bohb"}
    assert registry.get_sample_value("kubohb_request_errors_total", {**labels, "op": "tell"}) == 1
    assert registry.get_sample_value("kubohb_request_seconds_count", {**labels, "op": "ask"}) == 1
