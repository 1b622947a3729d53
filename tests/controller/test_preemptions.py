"""Preemptions counted per trial: a simulated spot cluster preempts running attempts (back to the
queue, a new pod start), ``timing.observe`` sees each running attempt go back to pending in the
polls, and ``kubohb status`` shows the counts."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.backends.base import Launch
from controller.backends.simulated import SimulatedBackend, SimulatedOptions, SyntheticObjective
from controller.sweep import timing
from controller.sweep.state import SweepState, TrialRecord
from controller.sweep.status import summarize
from trainer.contract import FILE_TRIAL, TrialSpec
from trainer.store.memory import MemoryStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_preempted_pod_polled_while_it_waits_is_counted_once() -> None:
    options = SimulatedOptions(
        gpus=3,  # a quota: preempted attempts queue behind the others
        pod_start_s=30.0,
        pod_start_sd_s=10.0,
        preemptions_per_gpu_hour=6.0,
        checkpoint_every_s=60.0,
        seed=4,
    )
    store = MemoryStore()
    b = SimulatedBackend("spot", store, options, objective=SyntheticObjective(1800), start=START)
    records: dict[str, TrialRecord] = {}
    for i in range(6):
        spec = TrialSpec(
            sweep="spot", trial_id=f"t{i}", config={"x": i}, budget=900.0, budget_unit="seconds",
            store_root=store.root,
        )  # fmt: skip
        key = f"{spec.prefix}/{FILE_TRIAL}"
        store.put(key, spec.model_dump_json().encode())
        b.launch(Launch(sweep="spot", trial_id=spec.trial_id, trial_url=store.url(key)))
        records[spec.trial_id] = TrialRecord(
            trial_id=spec.trial_id, config=spec.config, budget=spec.budget, state="RUNNING",
            attempts=1, deadline_s=3600.0, created_at=START, launched_at=START,
        )  # fmt: skip
    clock = b.clock()
    while b.adopt():  # the loop's polls, every 5 s of cluster time: each pod start is longer
        now = clock.now()
        for trial_id, ts in b.poll(list(records)).items():
            timing.observe(records[trial_id], ts, now)
        clock.advance_to(clock.elapsed_s + 5.0)
    actual = {r.trial_id: r.preemptions for r in b.history}
    assert sum(actual.values()) >= 3, "the scenario needs preemptions"
    assert {t: r.preemptions for t, r in records.items()} == actual
    for r in records.values():
        r.state = "SUCCEEDED"
    state = SweepState(
        sweep="spot", started_at=START, updated_at=clock.now(), bohb={}, trials=records
    )
    summary = summarize(state)
    assert summary["preemptions"] == sum(actual.values())
    assert [(p["trial_id"], p["preemptions"]) for p in summary["preempted"]] == sorted(
        ((t, n) for t, n in actual.items() if n), key=lambda x: -x[1]
    )
