"""Connecting to the API server: config, namespace, the controller's own identity, rate limits."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from controller import log
from controller.backends.k8s.jobs import OwnerRef

ENV_POD_NAME = "KUBOHB_POD_NAME"  # downward API (metadata.name), set by the chart
ENV_NAMESPACE = "KUBOHB_NAMESPACE"  # downward API (metadata.namespace), set by the chart
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubernetesBackendError(RuntimeError):
    """An API call failed in a way the user must fix; the message names the object and the fix."""


def load_api_client() -> tuple[client.ApiClient, str]:
    """In-cluster config when running in a pod, else the kubeconfig's current context.

    Returns the client and where its config came from ("in-cluster" or "kubeconfig"). Its
    connection pool has the client's default size: the backend sizes it (`ensure_pool_size`).
    """
    try:
        config.load_incluster_config()
        return client.ApiClient(), "in-cluster"
    except config.ConfigException:
        pass
    try:
        # KUBECONFIG as it is now: the client reads it once, when it is imported
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    except (config.ConfigException, FileNotFoundError) as exc:
        raise KubernetesBackendError(
            "kubernetes backend: no in-cluster service account and no usable kubeconfig "
            f"({exc}); run inside the cluster or set KUBECONFIG"
        ) from exc
    return client.ApiClient(), "kubeconfig"


def ensure_pool_size(api_client: client.ApiClient, connections: int) -> int:
    """Let the client's urllib3 pool keep at least `connections` connections to the API server.

    The kubernetes client's pool (``Configuration.connection_pool_maxsize``, default 5 × CPUs)
    is fixed when the ApiClient is made. Past its size urllib3 does not block: it opens a new
    connection for the extra request and throws it away afterwards ("Connection pool is full,
    discarding connection"), i.e. a TCP + TLS handshake per create at high concurrency. The
    client keeps everything else (host, credentials, TLS, proxy: a client given by the caller
    works as before); only a smaller pool is enlarged, through the pool manager's own settings,
    and pools it made already are dropped so that the next request makes one of the new size
    (``PoolManager.clear``: connections in use finish their request). Returns the size in
    effect.
    """
    manager = api_client.rest_client.pool_manager
    size = int(manager.connection_pool_kw.get("maxsize") or 1)  # urllib3's default is 1
    if size >= connections:
        return size
    manager.connection_pool_kw["maxsize"] = connections
    manager.clear()
    return connections


def default_namespace(explicit: str | None, env: Mapping[str, str], source: str) -> str:
    """options.namespace, else the controller pod's, else the service account's or the
    kubeconfig context's (`source`: "in-cluster", "kubeconfig" or "given"), else default."""
    if explicit:
        return explicit
    if env.get(ENV_NAMESPACE):
        return env[ENV_NAMESPACE]
    if source == "in-cluster" and _SA_NAMESPACE.is_file():
        return _SA_NAMESPACE.read_text().strip()
    if source == "kubeconfig":
        try:
            _, active = config.list_kube_config_contexts(os.environ.get("KUBECONFIG") or None)
            namespace = (active or {}).get("context", {}).get("namespace")
            if namespace:
                return str(namespace)
        except (config.ConfigException, FileNotFoundError, TypeError):
            pass
    return "default"


def read_json(response: Any) -> Any:
    """Decode a `_preload_content=False` response (skips the client's slow model decoding)."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def controller_owner(
    core: client.CoreV1Api, env: Mapping[str, str], namespace: str
) -> OwnerRef | None:
    """The Job that owns the controller's pod, or None when not run by the chart (laptop)."""
    pod_name = env.get(ENV_POD_NAME)
    pod_namespace = env.get(ENV_NAMESPACE)
    if not pod_name or not pod_namespace:
        return None
    if pod_namespace != namespace:
        log.event(
            "k8s.owner.skipped",
            logging.WARNING,
            reason="ownerReferences cannot cross namespaces",
            pod_namespace=pod_namespace,
            namespace=namespace,
        )
        return None  # ownerReferences cannot cross namespaces
    try:
        pod = read_json(core.read_namespaced_pod(pod_name, pod_namespace, _preload_content=False))
    except ApiException as exc:
        raise KubernetesBackendError(
            f"kubernetes backend: cannot read the controller pod {pod_namespace}/{pod_name} "
            f"(HTTP {exc.status} {exc.reason}); the Role must allow `get` on pods"
        ) from exc
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return OwnerRef(
                api_version=ref.get("apiVersion", "batch/v1"),
                kind="Job",
                name=ref["name"],
                uid=ref["uid"],
            )
    log.event("k8s.owner.none", logging.WARNING, pod=f"{pod_namespace}/{pod_name}")
    return None


class RateLimiter:
    """Token bucket: at most `rate` acquisitions per second on average, bursts up to `burst`;
    `rate` None = no limit. Over any window of T seconds at most ``burst + rate * T`` callers
    get through, however many threads call `acquire` at once.

    Thread-safe: each caller reserves its slot under the lock (the bucket may go negative: the
    callers queued behind) and sleeps outside it, so concurrent callers wait in parallel for
    successive slots ``1 / rate`` apart instead of one after another.
    """

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 or None, not {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate or 1.0)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, not {self.burst}")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token now; returns how long the caller must wait before using it."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the seconds slept."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
