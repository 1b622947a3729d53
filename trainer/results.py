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

from trainer.contract import FILE_RESULT, inbox_key, trial_prefix
from trainer.store import Store, StoreError

log = logging.getLogger("kubohb.trainer")


def publish(store: Store, sweep: str, trial_id: str, result_json: bytes) -> None:
    """Write the result (a StoreError propagates: no result, no exit 0), then announce it."""
    store.put(f"{trial_prefix(sweep, trial_id)}/{FILE_RESULT}", result_json)
    try:
        store.put(inbox_key(sweep, trial_id), b"")
    except StoreError as exc:
        log.warning("event=result.unannounced trial=%s error=%s", trial_id, exc)
