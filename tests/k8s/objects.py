"""In-memory object store of the emulated API server: what kmock's KubernetesEmulator lacks.

resourceVersions (one global counter), uid / namespace / creationTimestamp filling, an event log
for watches from a resourceVersion (with compaction -> 410 Gone), label selectors, 409 on a
duplicate create, delete with propagation (Background/Foreground delete dependents, Orphan keeps
them), and counters the tests assert on (creates per name, deletes with their policy).

Thread-safe: the HTTP side (the emulator's asyncio loop) and the fake Job controller (a thread)
both use it. Watch handlers are woken through their own loop.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

JOBS = "batch/v1/jobs"
PODS = "v1/pods"
EVENTS = "v1/events"
SECRETS = "v1/secrets"
CONFIGMAPS = "v1/configmaps"

Key = tuple[str, str, str]  # (resource, namespace, name)


class ApiError(Exception):
    """Becomes a Kubernetes Status response."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class GoneError(ApiError):
    def __init__(self, rv: int, oldest: int) -> None:
        super().__init__(410, "Expired", f"too old resource version: {rv} ({oldest})")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_REQ_RE = re.compile(
    r"^\s*(!)?\s*([\w./-]+)\s*(?:(==|=|!=)\s*([\w.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def _absent(key: str, labels: dict[str, str]) -> bool:
    return key not in labels


def _present(key: str, labels: dict[str, str]) -> bool:
    return key in labels


def _equal(key: str, value: str, labels: dict[str, str]) -> bool:
    return labels.get(key) == value


def _not_equal(key: str, value: str, labels: dict[str, str]) -> bool:
    return labels.get(key) != value


def _in(key: str, values: set[str], labels: dict[str, str]) -> bool:
    return labels.get(key) in values


def _not_in(key: str, values: set[str], labels: dict[str, str]) -> bool:
    return labels.get(key) not in values


def parse_selector(text: str | None) -> list[Callable[[dict[str, str]], bool]]:
    """Equality- and set-based label selectors ("a=b,c!=d,e in (x,y),!f")."""
    if not text:
        return []
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in parts:
        m = _REQ_RE.match(part)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        neg, key, op, value, setop, values = m.groups()
        if neg:
            checks.append(partial(_absent, key))
        elif op in ("=", "=="):
            checks.append(partial(_equal, key, value))
        elif op == "!=":
            checks.append(partial(_not_equal, key, value))
        elif setop:
            vals = {v.strip() for v in values.split(",")}
            checks.append(partial(_in if setop == "in" else _not_in, key, vals))
        else:
            checks.append(partial(_present, key))
    return checks


def matches(obj: dict[str, Any], checks: list[Callable[[dict[str, str]], bool]]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(check(labels) for check in checks)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge: lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class ObjectStore:
    def __init__(self, max_events: int = 100_000) -> None:
        self.cond = threading.Condition()
        self.rv = 0
        self.objects: dict[Key, dict[str, Any]] = {}
        # One event per resourceVersion: event i has rv log[0][0] + i (index, not scan).
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []
        self.max_events = max_events
        self.compacted_rv = 0  # watches from an older resourceVersion get 410 Gone
        self.creates: Counter[Key] = Counter()  # successful creations per object
        self.conflicts: Counter[Key] = Counter()  # 409s per object
        self.deletes: list[tuple[Key, str]] = []  # (object, propagationPolicy)
        self.closing = False
        self.force_gone = 0  # fault injection: answer this many next watches with 410 Gone
        # (namespace, pod) -> container -> the file its output goes to (the kubelet's log)
        self.pod_logs: dict[tuple[str, str], dict[str, Path]] = {}
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    # -- change notification --------------------------------------------------------------------

    def subscribe(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self.cond:
            self._waiters.add((loop, event))

    def unsubscribe(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self.cond:
            self._waiters.discard((loop, event))

    def _emit(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        """Record an event (lock held) and wake every watcher and the fake controller."""
        if len(self.log) >= self.max_events:  # compact the older half
            drop = len(self.log) // 2
            self.compacted_rv = self.log[drop - 1][0]
            del self.log[:drop]
        self.log.append((self.rv, resource, kind, copy.deepcopy(obj)))
        self.cond.notify_all()
        for loop, event in list(self._waiters):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop closed
                self._waiters.discard((loop, event))

    def close(self) -> None:
        with self.cond:
            self.closing = True
            for loop, event in list(self._waiters):
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(event.set)
            self.cond.notify_all()

    def compact(self) -> None:
        """Forget the event log, as etcd compaction does: older watches get 410 Gone."""
        with self.cond:
            self.log.clear()
            self.compacted_rv = self.rv

    # -- CRUD -----------------------------------------------------------------------------------

    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def create(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the URL")
        key = (resource, namespace, name)
        with self.cond:
            if key in self.objects:
                self.conflicts[key] += 1
                kind = resource.rsplit("/", 1)[-1]
                raise ApiError(409, "AlreadyExists", f'{kind} "{name}" already exists')
            meta.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=now_iso(),
                generation=1,
            )
            self._bump(obj)
            self.objects[key] = obj
            self.creates[key] += 1
            self._emit(resource, "ADDED", obj)
            return copy.deepcopy(obj)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self.cond:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            return copy.deepcopy(obj)

    def list(
        self, resource: str, namespace: str | None, selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        checks = parse_selector(selector)
        with self.cond:
            items = [
                copy.deepcopy(obj)
                for (res, ns, _), obj in sorted(self.objects.items())
                if res == resource
                and (namespace is None or ns == namespace)
                and matches(obj, checks)
            ]
            return items, self.rv

    def keys(self, resource: str) -> builtins.list[Key]:
        """Keys of one resource's objects, without copying them (the fake controller's scan)."""
        with self.cond:
            return [key for key in self.objects if key[0] == resource]

    def mutate(
        self, resource: str, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Apply `change` to the stored object in place (the fake controller's status writes)."""
        with self.cond:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            change(obj)
            self._bump(obj)
            self._emit(resource, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def patch(
        self,
        resource: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        def change(obj: dict[str, Any]) -> None:
            if subresource == "status":
                obj["status"] = merge_patch(obj.get("status") or {}, patch.get("status") or {})
            else:
                merged = merge_patch(obj, {k: v for k, v in patch.items() if k != "status"})
                obj.clear()
                obj.update(merged)

        return self.mutate(resource, namespace, name, change)

    def delete(self, resource: str, namespace: str, name: str, policy: str) -> dict[str, Any]:
        key = (resource, namespace, name)
        with self.cond:
            obj = self.objects.pop(key, None)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            self.deletes.append((key, policy))
            obj["metadata"]["deletionTimestamp"] = now_iso()
            self._bump(obj)
            self._emit(resource, "DELETED", obj)
            if policy != "Orphan":  # the garbage collector removes dependents
                uid = obj["metadata"]["uid"]
                for dep_key, dep in list(self.objects.items()):
                    refs = (dep.get("metadata") or {}).get("ownerReferences") or []
                    if dep_key[1] == namespace and any(r.get("uid") == uid for r in refs):
                        self.delete(*dep_key, policy="Background")
            return copy.deepcopy(obj)

    def read_log(
        self, namespace: str, pod: str, container: str | None, params: dict[str, str]
    ) -> bytes:
        """GET pods/{pod}/log as the kubelet answers it: the container's output so far, its last
        `tailLines` lines, then at most `limitBytes` of that; 400 for a container the pod does
        not have, 404 for a pod that is gone."""
        with self.cond:
            obj = self.objects.get((PODS, namespace, pod))
            logs = dict(self.pod_logs.get((namespace, pod), {}))
        if obj is None:
            raise ApiError(404, "NotFound", f'pods "{pod}" not found')
        names = [c["name"] for c in obj["spec"].get("containers") or []]
        name = container or (names[0] if len(names) == 1 else None)
        if name is None or name not in names:
            raise ApiError(
                400, "BadRequest", f"container {name} is not valid for pod {pod}: one of {names}"
            )
        path = logs.get(name)
        data = path.read_bytes() if path is not None and path.exists() else b""
        if params.get("tailLines"):
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(params["tailLines"]) :]) if int(params["tailLines"]) else b""
        if params.get("limitBytes"):
            data = data[: int(params["limitBytes"])]
        return data

    def events_since(
        self, rv: int, resource: str, namespace: str | None, selector: str | None
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """Events after `rv` for a watch; raises Gone when `rv` was compacted away."""
        checks = parse_selector(selector)
        with self.cond:
            if self.force_gone > 0:
                self.force_gone -= 1
                raise GoneError(rv, self.rv)
            if rv < self.compacted_rv:
                raise GoneError(rv, self.compacted_rv)
            start = max(0, rv + 1 - self.log[0][0]) if self.log else 0
            out = [
                {"type": kind, "object": obj}
                for (_, res, kind, obj) in self.log[start:]
                if res == resource
                and (namespace is None or obj["metadata"].get("namespace") == namespace)
                and matches(obj, checks)
            ]
            return out, self.rv
