"""Publishing a result: it carries the trial's token, stays under the size cap, and a relaunch
tells its own result from someone else's."""

from __future__ import annotations

import json

from trainer.contract import MAX_RESULT_BYTES, TrialInfo, TrialResult, TrialSpec, inbox_key
from trainer.results import has_own_result, publish
from trainer.store import FileStore

SPEC = TrialSpec(
    sweep="sw", trial_id="t1", config={}, budget=1.0, store_root="file:///x", token="abc123"
)


def test_a_result_carries_its_trials_token_and_is_announced(file_store: FileStore) -> None:
    assert not has_own_result(file_store, SPEC)
    publish(file_store, SPEC, TrialResult(trial_id="t1", status="ok", loss=0.25))
    written = json.loads(file_store.get("sw/trials/t1/result.json"))
    assert written["token"] == "abc123" and written["loss"] == 0.25
    assert file_store.exists(inbox_key("sw", "t1"))
    assert has_own_result(file_store, SPEC)


def test_someone_elses_result_is_not_taken_for_the_trials_own(file_store: FileStore) -> None:
    other = SPEC.model_copy(update={"token": "not-abc"})
    publish(file_store, other, TrialResult(trial_id="t1", status="ok", loss=0.0))
    assert not has_own_result(file_store, SPEC)  # the relaunch trains over it
    file_store.put("sw/trials/t1/result.json", b"{not json")
    assert not has_own_result(file_store, SPEC)


def test_a_result_over_the_cap_is_published_as_a_failure_saying_so(file_store: FileStore) -> None:
    info = TrialInfo.model_validate({"weights": [0.5] * 400_000})
    publish(file_store, SPEC, TrialResult(trial_id="t1", status="ok", loss=0.25, info=info))
    raw = file_store.get("sw/trials/t1/result.json")
    assert len(raw) < 10_000 < MAX_RESULT_BYTES
    written = TrialResult.model_validate_json(raw)
    assert written.status == "failed" and written.loss is None and written.token == "abc123"
    assert written.error is not None
    assert written.error.startswith("result.json would be 3,200,")
    assert "more than the 1,048,576 a result may have" in written.error
