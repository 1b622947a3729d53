"""JobCache: which version of a deleted Job is kept (pure, no API server)."""

from __future__ import annotations

from typing import Any

from controller.backends.k8s.status import job_state
from controller.backends.k8s.watch import JobCache


def _job(rv: int, *, complete: bool) -> dict[str, Any]:
    status: dict[str, Any] = {"active": 1}
    if complete:
        status = {
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    return {"metadata": {"name": "sweep-t1-0abc", "resourceVersion": str(rv)}, "status": status}


def test_a_deletion_event_keeps_the_jobs_last_state_even_when_its_completion_was_missed() -> None:
    cache = JobCache()
    cache.put(_job(5, complete=False))  # the watch saw it running, then missed the Complete update
    cache.remove(_job(9, complete=True))  # TTL cleanup: the DELETED event carries the last state
    assert cache.get("sweep-t1-0abc") is None
    gone = cache.gone("sweep-t1-0abc")
    assert gone is not None
    state = job_state("it0-c0-r0", gone)
    assert (state.phase, state.exit_code) == ("exited", 0)


def test_a_stale_deletion_event_does_not_drop_a_newer_job() -> None:
    cache = JobCache()
    cache.put(_job(9, complete=False))
    cache.remove(_job(5, complete=False))  # an old event arriving late
    assert cache.get("sweep-t1-0abc") is not None
    assert cache.gone("sweep-t1-0abc") is None
