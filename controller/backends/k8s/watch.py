"""A cache of the sweep's Jobs kept current by one watch (list, then watch from its
resourceVersion; relist on 410 Gone; relist when a watch window passes without events).

API cost: one list + one long-lived watch per `poll_interval_s`, whatever the number of trials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from pydantic import BaseModel

from controller import log
from controller.backends.k8s.client import read_json

_LIST_PAGE = 500


def _rv(obj: dict[str, Any]) -> int | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    # resourceVersions are opaque strings; every API server in use makes them integers, and when
    # one does not, ordering is unknown and the newest arrival wins.
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _newer(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None:
        return True
    a, b = _rv(new), _rv(old)
    return a is None or b is None or a >= b


class JobCache:
    """Latest known version of each Job of the sweep, fed by list, watch and our own creates."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, dict[str, Any]] = {}  # last version of deleted Jobs
        self._lock = threading.Lock()
        self.synced = threading.Event()  # set after the first complete list

    def put(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        with self._lock:
            if _newer(job, self._jobs.get(name)):
                self._jobs[name] = job
                self._gone.pop(name, None)

    def remove(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        with self._lock:
            current = self._jobs.get(name)
            if current is None or _newer(job, current):
                self._jobs.pop(name, None)
                # the DELETED event carries the Job's last state: it may hold a completion we missed
                self._gone[name] = job

    def replace_all(self, items: list[dict[str, Any]], list_rv: int | None) -> None:
        """A full list: Jobs missing from it were deleted unless we saw them after the list."""
        listed = {j["metadata"]["name"] for j in items}
        for job in items:
            self.put(job)
        with self._lock:
            for name, job in list(self._jobs.items()):
                rv = _rv(job)
                if name not in listed and (list_rv is None or rv is None or rv <= list_rv):
                    self._gone[name] = self._jobs.pop(name)

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._jobs.get(name)

    def gone(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._gone.get(name)

    def forget(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)
            self._gone.pop(name, None)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._jobs.values())


class WatchStats(BaseModel):
    lists: int = 0
    watches: int = 0
    events: int = 0
    gone: int = 0  # 410 Gone: resourceVersion too old, relisted
    errors: int = 0


class JobWatcher(threading.Thread):
    """Keeps a JobCache current; a daemon thread (one per backend)."""

    def __init__(
        self,
        batch: client.BatchV1Api,
        namespace: str,
        selector: str,
        cache: JobCache,
        window_s: float,
    ) -> None:
        super().__init__(name=f"kubohb-watch-{namespace}", daemon=True)
        self.batch = batch
        self.namespace = namespace
        self.selector = selector
        self.cache = cache
        self.window_s = max(1, round(window_s))  # timeoutSeconds is an integer
        self.stats = WatchStats()
        self.last_error: str | None = None
        self._stop_event = threading.Event()
        self._response: Any = None

    def stop(self) -> None:
        self._stop_event.set()
        response = self._response
        if response is not None:  # unblock the read in the watch thread
            with contextlib.suppress(Exception):
                response.shutdown()

    def run(self) -> None:
        rv: str | None = None
        backoff = 0.5
        while not self._stop_event.is_set():
            try:
                if rv is None:
                    rv = self.relist()
                rv, events = self._watch_once(rv)
                if events == 0:
                    rv = None  # a quiet window: the bounded fallback poll is a fresh list
                backoff = 0.5
            except Exception as exc:  # HTTP errors, connection reset, timeouts: retry with backoff
                if self._stop_event.is_set():
                    break
                rv = None
                if not isinstance(exc, ApiException):
                    why = f"{type(exc).__name__}: {exc}"
                elif exc.status == 410:  # our resourceVersion was compacted away: relist now
                    self.stats.gone += 1
                    log.event("k8s.watch.gone", namespace=self.namespace)
                    continue
                else:
                    why = f"HTTP {exc.status} {exc.reason}"
                self._failed(why)
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _failed(self, why: str) -> None:
        self.stats.errors += 1
        self.last_error = why
        log.event("k8s.watch.error", logging.WARNING, namespace=self.namespace, error=why)

    def relist(self) -> str:
        """List all of the sweep's Jobs (paged) and replace the cache; returns the list's RV."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": self.selector, "limit": _LIST_PAGE}
            if token:
                kwargs["_continue"] = token
            page = read_json(
                self.batch.list_namespaced_job(
                    self.namespace, _preload_content=False, _request_timeout=60, **kwargs
                )
            )
            self.stats.lists += 1
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        rv = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self.cache.replace_all(items, int(rv) if rv.isdigit() else None)
        self.cache.synced.set()
        return rv

    def _watch_once(self, rv: str) -> tuple[str, int]:
        """One watch request of `window_s` seconds; returns the last RV seen and the event count."""
        self.stats.watches += 1
        response = self.batch.list_namespaced_job(
            self.namespace,
            label_selector=self.selector,
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=self.window_s,
            _preload_content=False,
            _request_timeout=(10, self.window_s + 30),  # a dead connection fails, never hangs
        )
        self._response = response
        events = 0
        try:
            for line in iter_resp_lines(response):
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if kind == "BOOKMARK":
                    continue
                events += 1
                self.stats.events += 1
                if kind == "DELETED":
                    self.cache.remove(obj)
                else:
                    self.cache.put(obj)
                if self._stop_event.is_set():
                    break
        finally:
            self._response = None
            response.close()
            with contextlib.suppress(Exception):
                response.release_conn()
        return rv, events
