"""A Kubernetes API server on 127.0.0.1 for the backend's tests and benchmark.

kmock's KubernetesEmulator is the base: its aiohttp server, request parsing (resource, namespace,
name, action), request log, discovery endpoints and Status error rendering are used as they are.
Its object handling falls short of what the backend relies on (no resourceVersion, no label
selectors, a watch that replays everything and ignores resourceVersion and timeoutSeconds, no 409
on create, no delete propagation), so the object handlers are replaced by ones over
`objects.ObjectStore`. Every Job POSTed is validated with kubernetes-validate (strict, the newest
Kubernetes version it ships) and rejected with 422 when invalid, as an API server would.

The server runs its own asyncio loop in a thread; tests talk to it with the official client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import attrs
import kubernetes_validate
from kmock import KubernetesEmulator, Server
from kmock._internal import enums, rendering
from kmock._internal.k8s import KubernetesError, KubernetesScaffold
from kubernetes import client

from tests.k8s.objects import JOBS, PODS, ApiError, GoneError, ObjectStore

K8S_VERSION = kubernetes_validate.latest_version()  # e.g. "1.37"
logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per request: too much


@functools.cache
def _validator() -> Any:
    """A compiled strict validator for batch/v1 Job (kubernetes_validate.validate re-reads the
    schema files on every call, too slow for 1,000 Jobs)."""
    import jsonschema
    from kubernetes_validate.utils import all_versions, major_minor, schema_contents
    from referencing import Registry, Resource

    version = [v for v in all_versions() if major_minor(v) <= K8S_VERSION][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = schema_contents(f"{folder}/job-batch-v1.json", K8S_VERSION)
    defs = schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(defs) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_job(body: dict[str, Any]) -> None:
    """Raises ApiError(422) with every schema error of a Job body."""
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        text = "; ".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        raise ApiError(422, "Invalid", f"Job is invalid (kubernetes-validate --strict): {text}")


def _resource_key(request: rendering.Request) -> str:
    res = request.resource
    assert res is not None
    return f"{res.group}/{res.version}/{res.plural}" if res.group else f"{res.version}/{res.plural}"


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@attrs.define(kw_only=True)
class ApiServer(KubernetesEmulator):
    store: ObjectStore = attrs.field(factory=ObjectStore)
    validate: bool = True
    counts: Counter[str] = attrs.field(factory=Counter)  # "verb resource" -> requests
    rejected: list[str] = attrs.field(factory=list)  # 422 messages of invalid Jobs

    async def _handle(self, request: rendering.Request) -> Any:
        # Skip KubernetesEmulator._handle (its own object bookkeeping). Object requests go straight
        # to our handlers: kmock's DSL matching costs ~10 ms of CPU per request (profiled), which
        # would dominate a 1,000-trial benchmark. Everything else (discovery) goes through kmock.
        handlers = {
            enums.action.LIST: self._serve_list,
            enums.action.WATCH: self._serve_watch,
            enums.action.FETCH: self._serve_fetch,
            enums.action.CREATE: self._serve_create,
            enums.action.UPDATE: self._serve_update,
            enums.action.DELETE: self._serve_delete,
        }
        handler = handlers.get(request.action) if request.action is not None else None
        if request.resource is None or request.resource.plural is None or handler is None:
            return await KubernetesScaffold._handle(self, request)
        self.counts[f"{request.action.value} {request.resource.plural}"] += 1
        return await rendering.Response(payload=handler(request))(request)

    @staticmethod
    def _fail(exc: ApiError) -> KubernetesError:
        return KubernetesError(status=exc.code, reason=exc.reason, message=exc.message, details={})

    async def _serve_list(self, request: rendering.Request) -> Any:
        params = request.params
        try:
            items, rv = self.store.list(
                _resource_key(request), request.namespace, params.get("labelSelector")
            )
        except ApiError as exc:
            raise self._fail(exc) from None
        start = 0
        token = params.get("continue")
        if token:
            last = token.split(":", 1)[1]
            start = next(
                (i for i, o in enumerate(items) if o["metadata"]["name"] > last), len(items)
            )
        limit = int(params.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and start + limit < len(items):
            meta["continue"] = f"{rv}:{page[-1]['metadata']['name']}"
        return {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        params = request.params
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(params.get("timeoutSeconds") or 1800)
        selector = params.get("labelSelector")
        resource = _resource_key(request)
        wake = asyncio.Event()
        self.store.subscribe(loop, wake)
        try:
            yield b""  # send the headers now: the client waits for them
            since = params.get("resourceVersion")
            if not since or since == "0":
                items, cursor = self.store.list(resource, request.namespace, selector)
                for obj in items:
                    yield {"type": "ADDED", "object": obj}
            else:
                cursor = int(since)
            while not self.store.closing:
                wake.clear()
                try:
                    events, cursor = self.store.events_since(
                        cursor, resource, request.namespace, selector
                    )
                except GoneError as exc:
                    yield {"type": "ERROR", "object": _status(exc.code, exc.reason, exc.message)}
                    return
                for event in events:
                    yield event
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), remaining)
            if params.get("allowWatchBookmarks") == "true":
                yield {
                    "type": "BOOKMARK",
                    "object": {"kind": "Job", "metadata": {"resourceVersion": str(cursor)}},
                }
        finally:
            self.store.unsubscribe(loop, wake)

    async def _serve_fetch(self, request: rendering.Request) -> Any:
        try:
            if request.subresource == "log" and _resource_key(request) == PODS:
                return self.store.read_log(
                    request.namespace or "",
                    request.name or "",
                    request.params.get("container"),
                    dict(request.params),
                )  # bytes: sent as they are (text/plain), as the real endpoint does
            return self.store.get(
                _resource_key(request), request.namespace or "", request.name or ""
            )
        except ApiError as exc:
            raise self._fail(exc) from None

    async def _serve_create(self, request: rendering.Request) -> Any:
        resource = _resource_key(request)
        body = request.data if isinstance(request.data, dict) else {}
        try:
            if resource == JOBS and self.validate:
                try:
                    validate_job(body)
                except ApiError as exc:
                    self.rejected.append(exc.message)
                    raise
            return self.store.create(resource, request.namespace or "default", body)
        except ApiError as exc:
            raise self._fail(exc) from None

    async def _serve_update(self, request: rendering.Request) -> Any:
        body = request.data if isinstance(request.data, dict) else {}
        try:
            return self.store.patch(
                _resource_key(request),
                request.namespace or "",
                request.name or "",
                body,
                request.subresource,
            )
        except ApiError as exc:
            raise self._fail(exc) from None

    async def _serve_delete(self, request: rendering.Request) -> Any:
        body = request.data if isinstance(request.data, dict) else {}
        policy = body.get("propagationPolicy") or request.params.get("propagationPolicy")
        try:
            obj = self.store.delete(
                _resource_key(request),
                request.namespace or "",
                request.name or "",
                policy or "Background",
            )
        except ApiError as exc:
            raise self._fail(exc) from None
        meta = obj["metadata"]
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "details": {"name": meta["name"], "uid": meta["uid"]},
        }


class RunningApiServer:
    """The emulator served on 127.0.0.1 from a background thread (context manager)."""

    def __init__(self, store: ObjectStore | None = None, validate: bool = True) -> None:
        self.store = store or ObjectStore()
        self.validate = validate
        self.handler: ApiServer | None = None
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="k8s-apiserver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def counts(self) -> Counter[str]:
        assert self.handler is not None
        return self.handler.counts

    def cpu_seconds(self) -> float:
        """CPU time the server's thread (its asyncio loop: every request) has used so far. Over
        a benchmark's wall time it tells whether the emulation could be the bottleneck."""
        ident = self._thread.ident
        assert ident is not None, "the server is not running"
        return time.clock_gettime(time.pthread_getcpuclockid(ident))

    def api_client(self) -> client.ApiClient:
        config = client.Configuration(host=self.url)
        config.connection_pool_maxsize = 8
        return client.ApiClient(config)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with ApiServer(store=self.store, validate=self.validate) as handler:
            handler.resources["batch/v1/jobs"] = {"kind": "Job", "namespaced": True}
            handler.resources["v1/pods"] = {"kind": "Pod", "namespaced": True}
            handler.resources["v1/configmaps"] = {"kind": "ConfigMap", "namespaced": True}
            handler.resources["v1/secrets"] = {"kind": "Secret", "namespaced": True}
            handler.resources["v1/events"] = {"kind": "Event", "namespaced": True}
            async with Server(handler, host="127.0.0.1") as server:
                self.handler = handler
                self.port = server.port
                self._ready.set()
                await self._stop.wait()
                self.store.close()  # end open watches so the server shuts down at once
                await asyncio.sleep(0.05)

    def __enter__(self) -> RunningApiServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.port:
            raise RuntimeError(f"API server emulation did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
