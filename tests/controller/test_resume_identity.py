"""Resume identity: a resume that changes what a trial's loss means is refused with a diff and
leaves the store as it was; an allowed change replaces spec.yaml, the old text kept in the spec
history, which converges after a kill between its two writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.sweep import identity
from controller.sweep.identity import HISTORY, read_history
from controller.sweep.runner import ResumeConflictError, load_or_create, run_sweep
from controller.sweep.spec import parse_sweep
from tests.sweeps import SPACE, synthetic_sweep
from trainer.store import FileStore, StoreError
from trainer.store.counting import CountingStore


def _text(tmp: Path, **over: Any) -> str:
    return yaml.safe_dump(synthetic_sweep(tmp, **over), sort_keys=False)


def _start(tmp: Path, **over: Any) -> tuple[FileStore, str]:
    store = FileStore(tmp / "store")
    text = _text(tmp, **over)
    load_or_create(parse_sweep(text), text, store)
    return store, text


def _files(store: FileStore) -> dict[str, bytes]:
    return {k: store.get(k) for k in store.list("")}


WIDER: list[dict[str, Any]] = json.loads(json.dumps(SPACE))  # a copy, x up to 4 below
WIDER[0]["high"] = 4.0
# (what changes, the dotted path the refusal names): everything that changes a trial's loss
OBJECTIVE: list[tuple[dict[str, Any], str]] = [
    ({"trainer": {"dataset": "cifar10"}}, "trainer.dataset: 'synthetic' → 'cifar10'"),
    ({"trainer": {"data": {"subset": 5000}}}, "trainer.data.subset: None → 5000"),
    ({"trainer": {"data": {"val_size": 100}}}, "trainer.data.val_size: None → 100"),
    ({"trainer": {"data": {"location": "/data"}}}, "trainer.data.location: None → '/data'"),
    ({"trainer": {"data": {"test_size": 100}}}, "trainer.data.test_size"),
    ({"trainer": {"seed": 1}}, "trainer.seed: 0 → 1"),
    ({"trainer": {"command": ["python", "-m", "trainer"]}}, "trainer.command: "),
    ({"trainer": {"image": "trainer:2"}}, "trainer.image: None → 'trainer:2'"),
    ({"trainer": {"env": {"KUBOHB_MAX_BUDGET": "27"}}}, "trainer.env.KUBOHB_MAX_BUDGET: '9'"),
    ({"trainer": {"max_params": 1000}}, "trainer.max_params"),
    ({"trainer": {"device": "cpu"}}, "trainer.device: 'auto' → 'cpu'"),
    ({"trainer": {"amp": False}}, "trainer.amp: True → False"),
    # the synthetic sweep's budget is in seconds: what sets the speed is part of the objective
    ({"trainer": {"resources": {"gpus": 1}}}, "trainer.resources.gpus: 0 → 1"),
    ({"trainer": {"resources": {"cpu": "4"}}}, "trainer.resources.cpu: None → '4'"),
    ({"trainer": {"compile": True}}, "trainer.compile"),
    ({"backend": {"local": {"gpus": [0]}}}, "backend.local.gpus: None → [0]"),
    ({"backend": {"local": {"run_dir": "/elsewhere"}}}, "backend.local.run_dir"),
    ({"backend": {"type": "simulated"}}, "backend.type: 'local' → 'simulated'"),
    ({"bohb": {"seed": 8}}, "bohb.seed: 7 → 8"),
    ({"budget": {"unit": "seconds", "min": 1, "max": 27, "eta": 3}}, "budget.max: 9.0 → 27.0"),
    ({"space": {"parameters": WIDER}}, "space.parameters[0].high: 3.0 → 4.0"),
]


@pytest.mark.parametrize(("over", "line"), OBJECTIVE, ids=[line for _, line in OBJECTIVE])
def test_a_changed_objective_is_refused_naming_the_field(
    tmp_path: Path, over: dict[str, Any], line: str
) -> None:
    store, _ = _start(tmp_path)
    before = _files(store)
    text = _text(tmp_path, **over)
    with pytest.raises(ResumeConflictError) as err:
        load_or_create(parse_sweep(text), text, store)
    message = str(err.value)
    assert "must not change on resume" in message and f"\n  {line}" in message, message
    assert _files(store) == before  # nothing written: not spec.yaml, not a history entry


def test_every_refused_field_is_listed_and_long_values_shortened(tmp_path: Path) -> None:
    store, _ = _start(tmp_path)
    long_command = ["python", "-m", "trainer", *(f"--flag-{i}" for i in range(20))]
    text = _text(tmp_path, trainer={"seed": 3, "command": long_command}, parallelism=4)
    with pytest.raises(ResumeConflictError) as err:
        load_or_create(parse_sweep(text), text, store)
    lines = [ln.strip() for ln in str(err.value).splitlines() if ln.startswith("  ")]
    assert [ln.split(":")[0] for ln in lines] == ["trainer.command", "trainer.seed"]
    assert lines[0].endswith("...") and len(lines[0]) < 160  # parallelism may change: unlisted


def test_secret_looking_values_are_masked_in_the_diff(tmp_path: Path) -> None:
    store, _ = _start(tmp_path)
    text = _text(tmp_path, trainer={"env": {"KUBOHB_MAX_BUDGET": "9", "WANDB_API_KEY": "abc"}})
    with pytest.raises(ResumeConflictError, match=r"trainer\.env\.WANDB_API_KEY: \(unset\) → '\*"):
        load_or_create(parse_sweep(text), text, store)


def test_an_epochs_budget_may_change_what_sets_speed_only(tmp_path: Path) -> None:
    epochs = {"budget": {"unit": "epochs", "min": 1, "max": 9, "eta": 3}}
    store, _ = _start(tmp_path, **epochs, trainer={"device": "cuda", "resources": {"gpus": 1}})
    # one device per trial: more GPUs, CPUs, memory or workers do not change an epoch's loss
    faster = {"device": "cuda", "resources": {"gpus": 2, "cpu": "8"}, "num_workers": 8}
    text = _text(tmp_path, **epochs, trainer=faster)
    load_or_create(parse_sweep(text), text, store)
    # ... but the GPU model picks the AMP precision (bf16 or fp16)
    text = _text(tmp_path, **epochs, trainer=faster, backend={"local": {"gpus": [1, 2]}})
    with pytest.raises(ResumeConflictError, match=r"backend\.local\.gpus: None → \[1, 2\]"):
        load_or_create(parse_sweep(text), text, store)


def test_cpu_trials_with_auto_device_refuse_getting_a_gpu(tmp_path: Path) -> None:
    epochs = {"budget": {"unit": "epochs", "min": 1, "max": 9, "eta": 3}}
    store, _ = _start(tmp_path, **epochs)
    text = _text(tmp_path, **epochs, trainer={"resources": {"gpus": 1}})  # fp32 CPU → AMP GPU
    with pytest.raises(ResumeConflictError, match=r"trainer\.resources\.gpus: 0 → 1"):
        load_or_create(parse_sweep(text), text, store)


def test_options_of_an_unused_backend_may_change(tmp_path: Path) -> None:
    store, _ = _start(tmp_path)
    text = _text(tmp_path, backend={"kubernetes": {"namespace": "other", "gpu_resource": "x/y"}})
    load_or_create(parse_sweep(text), text, store)  # the sweep runs locally
    assert store.get("syn/spec.yaml").decode() == text


# -- allowed changes: spec.yaml replaced, the old text kept ---------------------------------------


def _simulated(tmp: Path, **over: Any) -> str:
    """The synthetic sweep in virtual time: a whole run_sweep in well under a second."""
    backend = {"type": "simulated", "simulated": {"pod_start_s": 1, "pod_start_sd_s": 0}}
    return _text(tmp, backend=backend, **over)


def test_allowed_changes_are_accepted_and_kept_in_the_history(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    first = _simulated(tmp_path, stop={"max_iterations": 1})
    assert run_sweep(parse_sweep(first), first, store=store).reason == "max_iterations"
    assert not store.list(f"syn/{HISTORY}")

    # a raised cap (the stop section) and more parallelism: the sweep goes on
    second = _simulated(tmp_path, stop={"max_iterations": 2}, parallelism=4)
    outcome = run_sweep(parse_sweep(second), second, store=store)
    assert outcome.reason == "max_iterations" and len(outcome.state.trials) == 17
    assert store.get("syn/spec.yaml").decode() == second  # the spec the sweep now runs
    (entry,) = read_history(store, "syn")
    assert entry.n == 1 and entry.previous == first
    assert entry.changes == [
        {"path": "stop.max_iterations", "old": 1, "new": 2},
        {"path": "parallelism", "old": 2, "new": 4},
    ]

    # a second change: a second entry, holding the text the first one installed
    third = _simulated(tmp_path, stop={"max_iterations": 2, "max_gpu_hours": 5}, parallelism=4)
    run_sweep(parse_sweep(third), third, store=store)
    history = read_history(store, "syn")
    assert [e.n for e in history] == [1, 2] and history[1].previous == second
    assert history[1].changes == [{"path": "stop.max_gpu_hours", "old": None, "new": 5.0}]
    assert store.get("syn/spec.yaml").decode() == third
    # the same file again: nothing changed, nothing written
    run_sweep(parse_sweep(third), third, store=store)
    assert len(store.list(f"syn/{HISTORY}")) == 2


class DieAfterHistory(CountingStore):
    """A controller killed right after it wrote a history entry, before spec.yaml."""

    def _after_put(self, op: str, key: str, size: int) -> None:
        if f"/{HISTORY}/" in key:
            raise KeyboardInterrupt  # stands for the SIGKILL: nothing after this write runs


def test_a_kill_between_the_history_and_spec_yaml_converges(tmp_path: Path) -> None:
    store, first = _start(tmp_path)
    second = _text(tmp_path, parallelism=3)
    with pytest.raises(KeyboardInterrupt):
        load_or_create(parse_sweep(second), second, DieAfterHistory(store))
    assert store.get("syn/spec.yaml").decode() == first  # the old text stays the spec...
    assert read_history(store, "syn") == []  # ...and the entry is not committed yet
    # the rerun with the same file finishes that change: no second entry
    load_or_create(parse_sweep(second), second, store)
    assert store.get("syn/spec.yaml").decode() == second
    (entry,) = read_history(store, "syn")
    assert entry.previous == first and len(store.list(f"syn/{HISTORY}")) == 1


def test_an_interrupted_change_rerun_with_another_file_is_left_behind(tmp_path: Path) -> None:
    store, first = _start(tmp_path)
    second, third = _text(tmp_path, parallelism=3), _text(tmp_path, parallelism=5)
    with pytest.raises(KeyboardInterrupt):
        load_or_create(parse_sweep(second), second, DieAfterHistory(store))
    load_or_create(parse_sweep(third), third, store)  # the user edited the file again meanwhile
    assert store.get("syn/spec.yaml").decode() == third
    assert len(store.list(f"syn/{HISTORY}")) == 2  # append-only: the dangling one stays...
    (entry,) = read_history(store, "syn")  # ...but the history holds what took effect only
    assert entry.n == 2 and entry.previous == first
    assert entry.changes == [{"path": "parallelism", "old": 2, "new": 5}]


def test_a_damaged_history_entry_is_named_not_built_on(tmp_path: Path) -> None:
    store, first = _start(tmp_path)
    store.put(f"syn/{HISTORY}/000001.json", b"{}")
    text = _text(tmp_path, parallelism=3)
    with pytest.raises(StoreError, match=r"spec-history/000001.json: not a kubohb spec history"):
        load_or_create(parse_sweep(text), text, store)
    assert store.get("syn/spec.yaml").decode() == first


def test_a_text_only_edit_is_kept_too(tmp_path: Path) -> None:
    store, first = _start(tmp_path)
    commented = "# tuned on 2 GPUs\n" + first
    load_or_create(parse_sweep(commented), commented, store)
    (entry,) = read_history(store, "syn")
    assert entry.previous == first and entry.changes == []
    assert store.get("syn/spec.yaml").decode() == commented


def test_the_report_reads_the_replaced_spec_yaml(tmp_path: Path) -> None:
    from controller.report.build import trainer_command

    store, _ = _start(tmp_path)
    text = _text(tmp_path, parallelism=3)
    load_or_create(parse_sweep(text), text, store)
    assert "trainer.synthetic" in trainer_command(store.get("syn/spec.yaml").decode())


def test_identity_names_every_objective_field_of_a_seconds_sweep(tmp_path: Path) -> None:
    spec = parse_sweep(_text(tmp_path))
    paths = identity.identity(spec)
    for field in ("trainer.dataset", "trainer.data.subset", "trainer.seed", "trainer.command"):
        assert field in paths
    assert "trainer.resources.gpus" in paths and "backend.local.gpus" in paths
    for allowed in ("parallelism", "poll_interval_s", "stop.max_iterations", "store.url"):
        assert not any(p.startswith(allowed) for p in paths)
    assert not any(p.startswith(("trials.", "backend.kubernetes.", "store.")) for p in paths)
