"""Publishing a trial's result: ``result.json`` in the trial's folder, then an empty marker in the
sweep's inbox (``<sweep>/inbox/<trial>``).

Why the marker: the controller lists the inbox once per poll and reads only the results it
names, so a poll costs O(new results) store requests instead of one read per running trial. The
result goes first, so a marker always names a result that is there. The marker is best effort: a
trainer that dies (or cannot reach the store) between the two leaves a result without a marker,
and the controller reads it when the backend reports the attempt ended, a poll later.
"""

from __future__ import annotations

import logging

from trainer.contract import (
    FILE_RESULT,
    MAX_RESULT_BYTES,
    TrialInfo,
    TrialResult,
    TrialSpec,
    inbox_key,
    trial_prefix,
)
from trainer.store import NotFound, Store, StoreError, TooLarge

log = logging.getLogger("kubohb.trainer")


def publish(store: Store, spec: TrialSpec, result: TrialResult) -> None:
    """Write the result, carrying the trial's token (a StoreError propagates: no result, no exit
    0), then announce it. A result over MAX_RESULT_BYTES is published as a failure saying so:
    the controller would refuse it anyway, and this way the reason is the trainer's own."""
    data = _encode(result.model_copy(update={"token": spec.token}))
    if len(data) > MAX_RESULT_BYTES:
        log.warning("event=result.too_large trial=%s bytes=%d", spec.trial_id, len(data))
        error = (
            f"result.json would be {len(data):,} bytes, more than the {MAX_RESULT_BYTES:,} a "
            "result may have: keep big outputs in files beside it, not in `info`"
        )
        too_big = result.model_copy(
            update={"status": "failed", "loss": None, "error": error, "info": TrialInfo()}
        )
        data = _encode(too_big.model_copy(update={"token": spec.token}))
    store.put(f"{trial_prefix(spec.sweep, spec.trial_id)}/{FILE_RESULT}", data)
    try:
        store.put(inbox_key(spec.sweep, spec.trial_id), b"")
    except StoreError as exc:
        log.warning("event=result.unannounced trial=%s error=%s", spec.trial_id, exc)


def has_own_result(store: Store, spec: TrialSpec) -> bool:
    """Whether the trial's result.json is there and its own (a relaunch after the result was
    written has nothing to do). Someone else's result, or an unreadable one, is trained over."""
    try:
        raw = store.get_limited(f"{spec.prefix}/{FILE_RESULT}", MAX_RESULT_BYTES)
    except NotFound:
        return False
    except TooLarge:
        return False
    try:
        result = TrialResult.model_validate_json(raw)
    except ValueError:
        return False
    return result.trial_id == spec.trial_id and (spec.token is None or result.token == spec.token)


def _encode(result: TrialResult) -> bytes:
    return result.model_dump_json(indent=1).encode()
