"""The Kubernetes backend: one batch/v1 Job per trial.

Constructor (the controller's factory calls exactly this)::

    KubernetesBackend(*, sweep: str, store_root: str, options: KubernetesOptions, image: str,
                      command: list[str], resources: controller.backends.base.Resources,
                      env: dict[str, str], api_client: kubernetes.client.ApiClient | None = None,
                      clock=time.monotonic)

Without `api_client` it loads the in-cluster config, else the kubeconfig; the client's HTTP
connection pool (a given one's too) is enlarged to `POOL_CONNECTIONS` when smaller. Environment
read: KUBOHB_POD_NAME and KUBOHB_NAMESPACE (downward API, set by the chart) to find the controller's
own Job, which becomes the ownerReference of every trial Job. API use (the chart's Role): jobs
create/get/list/watch/delete, pods get/list, pods/log get (a failed attempt's log, `log_tail`),
events create.

State comes from one watch on the sweep's Jobs (watch.py); `poll` reads that cache and costs no
request, except a pod list for a Job pending longer than `pending_timeout_s` (at most one per
poll interval) and the pods of the Jobs whose pod started running, or that ended before they were
seen running, since the last poll (one list per 50 such Jobs, `job-name in (...)`): the trial's
running time comes from the trainer container's own start and finish (times.py), so time a Job
spends suspended by Kueue, unschedulable or pulling its image is reported as pending, never as
running.

Concurrency: `launch` may be called from several threads at once (the scheduler launches a tick's
trials from a small thread pool, at most `launch_concurrency()` of them), and `poll` and `cancel`
from another thread meanwhile. Creates share one token bucket (`creates_per_second`,
`creates_burst`; `launch_rate()` tells the scheduler the rate); a launch waits for its token
before it takes its trial's lock, so launches of different trials never wait on each other's
requests, and a cancel never waits behind a launch queued for a token. While a launch is in
flight its trial polls as "pending". Each trial gets one Job however its launches interleave:
its launches and cancels are serialised by a per-trial lock, and a launch that a cancel (or a
newer launch) overtook while it waited for its token creates nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from controller import log
from controller.backends.base import (
    LOG_TAIL_BYTES,
    Backend,
    Ending,
    ExitCode,
    Launch,
    Resources,
    TrialState,
)
from controller.backends.k8s.client import (
    KubernetesBackendError,
    RateLimiter,
    controller_owner,
    default_namespace,
    ensure_pool_size,
    load_api_client,
    read_json,
)
from controller.backends.k8s.jobs import build_job
from controller.backends.k8s.names import CONTAINER, LABEL_TRIAL, job_name, sweep_selector
from controller.backends.k8s.options import KubernetesOptions
from controller.backends.k8s.status import is_finished, job_state, pod_problem
from controller.backends.k8s.times import RunPeriods, job_end_time, latest_container_times
from controller.backends.k8s.watch import JobCache, JobWatcher
from trainer.contract import check_name

_SYNC_WAIT_S = 30.0  # adopt() waits this long for the first list before listing itself
_RECREATE_TRIES = 20  # a relaunch waits for the old Job's deletion this many times...
_RECREATE_WAIT_S = 0.25  # ...this long each
# One Event per milestone reason at most this often: the API server keeps Events for an hour,
# and a sweep's thousand lost trials must not be a thousand objects in etcd
MILESTONE_EVERY_S = 60.0
# Launches one backend serves at once (launch_concurrency): at the default 20 creates/s that
# keeps the rate up to a create latency of 0.8 s (a slow admission webhook), far above the tens
# of milliseconds a managed API server takes.
LAUNCH_CONCURRENCY = 16
# HTTP connections kept to the API server: the launches, the watch's long-lived request, a poll's
# pod list, a cancel's delete, an event.
POOL_CONNECTIONS = LAUNCH_CONCURRENCY + 4
# A failed attempt's log is read as its last lines (`tailLines`), then clipped to LOG_TAIL_BYTES
LOG_TAIL_LINES = 2000
_POD_BATCH = 50  # Jobs per pod list of a poll (`job-name in (...)`: a URL of about 3 kB)


class KubernetesBackend(Backend):
    name = "kubernetes"

    def __init__(
        self,
        *,
        sweep: str,
        store_root: str,
        options: KubernetesOptions,
        image: str,
        command: list[str],
        resources: Resources,
        env: dict[str, str],
        api_client: client.ApiClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.sweep = check_name(sweep, "sweep")
        self.store_root = store_root
        self.options = options
        self.image = options.image or image
        if not self.image:
            raise KubernetesBackendError("backend.kubernetes.image: no trainer image is set")
        if not command:
            raise KubernetesBackendError("trainer command: must not be empty")
        self.command = list(command)
        self.resources = resources
        self.env = dict(env)
        self.monotonic = clock  # pending timeouts: a monotonic clock (tests pass their own)
        environ = os.environ if environ is None else environ
        source = "given"
        if api_client is None:
            api_client, source = load_api_client()
        ensure_pool_size(api_client, POOL_CONNECTIONS)
        self.api = api_client
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = default_namespace(options.namespace, environ, source)
        self.owner = controller_owner(self.core, environ, self.namespace)
        # Real time, never `clock`: tests freeze that one for pending timeouts, and the limiter
        # sleeps in real time.
        self.limiter = RateLimiter(options.creates_per_second, burst=options.creates_burst)
        self.cache = JobCache()
        self.watcher = JobWatcher(
            self.batch, self.namespace, sweep_selector(sweep), self.cache, options.poll_interval_s
        )
        # `_lock` guards the dicts below it; it is held only for dict operations, never across a
        # request or a sleep. `_poll_lock` lets one poll run at a time (polls mutate RunPeriods).
        self._lock = threading.Lock()
        self._milestones: dict[str, float] = {}  # reason -> when its last Event went out
        self._poll_lock = threading.Lock()
        self._pending_since: dict[str, float] = {}  # job name -> when first seen not running
        self._pods_checked: dict[str, float] = {}  # job name -> when its pods were last read
        self._ended: dict[str, TrialState] = {}  # trials we cancelled or declared lost
        self._runs: dict[str, RunPeriods] = {}  # job name -> its attempt's running periods
        self._launching: dict[str, int] = {}  # trial id -> launches in flight
        self._epoch: dict[str, int] = {}  # trial id -> bumped by each launch and cancel
        self._trial_locks: dict[str, threading.Lock] = {}  # trial id -> its launches and cancels
        self._names: dict[str, str] = {}  # trial id -> Job name (a hash: computed once)
        self._polled_pods: dict[str, list[dict[str, Any]]] = {}  # this poll's, by Job name
        self.creates = 0  # Job creations that reached the API server (409s included)
        self.watcher.start()
        log.event(
            "k8s.backend.started",
            sweep=sweep,
            namespace=self.namespace,
            owner=self.owner.name if self.owner else None,
        )

    # -- Backend -------------------------------------------------------------------------------

    def launch(self, launch: Launch) -> None:
        if launch.sweep != self.sweep:
            raise KubernetesBackendError(
                f"launch {launch.trial_id}: sweep {launch.sweep!r} is not this backend's "
                f"sweep {self.sweep!r}"
            )
        trial = launch.trial_id
        name = self._name(trial)
        if self._live(self.cache.get(name)):
            return  # already there: never a second Job for a trial (and no token spent)
        resources = launch.resources if "resources" in launch.model_fields_set else self.resources
        body = build_job(
            launch=launch,
            options=self.options,
            image=self.image,
            command=self.command,
            resources=resources,
            env=self.env,
            namespace=self.namespace,
            owner=self.owner,
        )
        with self._lock:  # a new attempt: forget the last one's state; polls say "pending"
            epoch = self._epoch[trial] = self._epoch.get(trial, 0) + 1
            self._launching[trial] = self._launching.get(trial, 0) + 1
            self._ended.pop(trial, None)
            self._pending_since.pop(name, None)
            self._pods_checked.pop(name, None)
            self._runs.pop(name, None)
            trial_lock = self._trial_locks.setdefault(trial, threading.Lock())
        try:
            self.limiter.acquire()  # outside the trial's lock: a cancel does not wait for it
            with trial_lock:
                if self._epoch.get(trial) != epoch:  # cancelled, or launched again, while it
                    log.event("k8s.launch.overtaken", job=name)  # waited: nothing to create
                    return
                current = self.cache.get(name)
                if self._live(current):
                    return  # created meanwhile (by a launch that was in flight): ours
                if current is not None:  # a retry of an ended trial: the old Job goes first
                    self._delete(name)
                self._create(name, body)
        finally:
            with self._lock:
                left = self._launching.pop(trial) - 1
                if left:
                    self._launching[trial] = left

    def poll(self, trial_ids: Iterable[str]) -> dict[str, TrialState]:
        out: dict[str, TrialState] = {}
        # before the first list every Job would look missing ("lost"): wait for it (once)
        self.cache.synced.wait(_SYNC_WAIT_S)
        with self._poll_lock:
            now = self.monotonic()
            trial_ids = list(trial_ids)
            self._polled_pods = self._pods_to_time(trial_ids)
            try:
                for trial_id in trial_ids:
                    out[trial_id] = self._state(trial_id, now)
            finally:
                self._polled_pods = {}
        return out

    def cancel(self, trial_id: str) -> None:
        name = self._name(trial_id)
        with self._lock:  # reported cancelled at once; a launch still queued creates nothing
            self._epoch[trial_id] = self._epoch.get(trial_id, 0) + 1
            self._ended[trial_id] = TrialState(
                trial_id=trial_id,
                phase="exited",
                exit_code=ExitCode.CANCELLED,
                ending=Ending.CANCELLED,
                reason="cancelled",
            )
            trial_lock = self._trial_locks.setdefault(trial_id, threading.Lock())
        with trial_lock:  # waits only for a create request already sent, then deletes its Job
            self._delete(name)

    def launch_rate(self) -> float | None:
        """Job creates per second this backend allows on average (`creates_per_second`; bursts
        of `creates_burst` above it); None = no limit of its own. The scheduler sizes the
        launches it starts per tick from it."""
        return self.limiter.rate

    def launch_concurrency(self) -> int:
        """How many `launch` calls this backend serves at once without queueing on its HTTP
        connections: the most threads worth launching from."""
        return LAUNCH_CONCURRENCY

    def adopt(self) -> set[str]:
        if not self.cache.synced.wait(_SYNC_WAIT_S):
            try:
                self.watcher.relist()  # the watch thread is failing: surface its error here
            except ApiException as exc:
                raise KubernetesBackendError(
                    f"Jobs of sweep {self.sweep} in {self.namespace}: list failed (HTTP "
                    f"{exc.status} {exc.reason}); the Role must allow list/watch on jobs"
                ) from exc
        adopted = {
            job["metadata"]["labels"][LABEL_TRIAL]
            for job in self.cache.snapshot()
            if not is_finished(job) and LABEL_TRIAL in (job["metadata"].get("labels") or {})
        }
        log.event("k8s.backend.adopted", sweep=self.sweep, trials=len(adopted))
        return adopted

    def close(self) -> None:
        self.watcher.stop()
        self.watcher.join(timeout=5.0)

    # -- internals -----------------------------------------------------------------------------

    def _name(self, trial_id: str) -> str:
        name = self._names.get(trial_id)
        if name is None:  # threads racing here compute the same name; setdefault keeps one
            name = self._names.setdefault(trial_id, job_name(self.sweep, trial_id))
        return name

    @staticmethod
    def _live(job: dict[str, Any] | None) -> bool:
        """A Job that runs (or will) this trial: not ended, not being deleted."""
        return (
            job is not None
            and not is_finished(job)
            and not (job.get("metadata") or {}).get("deletionTimestamp")
        )

    def _state(self, trial_id: str, now: float) -> TrialState:
        with self._lock:
            ended = self._ended.get(trial_id)
            if ended is not None:  # cancelled or declared lost: late watch events do not count
                return ended
            if trial_id in self._launching:  # queued for a token or being created (the cache
                # may still hold the last attempt's ended Job): the new attempt has not started
                return TrialState(trial_id=trial_id, phase="pending", reason="launching", run_s=0.0)
            epoch = self._epoch.get(trial_id, 0)
        name = self._name(trial_id)
        job = self.cache.get(name)
        if job is None:
            gone = self.cache.gone(name)
            if gone is not None and is_finished(gone):  # ended, then removed (TTL)
                return self._timed(name, gone, job_state(trial_id, gone))
            return TrialState(trial_id=trial_id, phase="lost", reason="Job not found")
        state = self._timed(name, job, job_state(trial_id, job))
        if state.phase != "pending" or (job.get("spec") or {}).get("suspend"):
            with self._lock:
                self._pending_since.pop(name, None)  # suspended = queued by Kueue: not stuck
            return state
        with self._lock:
            since = self._pending_since.setdefault(name, now)
        if now - since < self.options.pending_timeout_s:
            return state
        return self._check_stuck(trial_id, name, now, since, epoch) or state

    def _timed(self, name: str, job: dict[str, Any], state: TrialState) -> TrialState:
        """The Job's state with the attempt's running time, from its trainer container."""
        wall = datetime.now(UTC)
        with self._lock:
            run = self._runs.setdefault(name, RunPeriods())
        if state.phase == "running":
            if run.started is None:  # a pod began running: read its container's start, once
                started, _ = self._container_times(name)
                run.start(started or wall)
            return state.model_copy(update={"started_at": run.started, "run_s": run.total(wall)})
        if state.phase == "pending":  # not started, or preempted and its replacement pending
            run.stop(wall)
            return state.model_copy(update={"run_s": run.done_s})
        end = job_end_time(job) or wall
        if run.last_started is None:  # ended before it was seen running: its pod's own times
            started, finished = self._container_times(name)
            if started is not None:
                run.start(started)
                end = finished or end
        run.stop(end)
        return state.model_copy(
            update={"started_at": run.last_started, "ended_at": end, "run_s": run.done_s}
        )

    def _pods(self, name: str) -> list[dict[str, Any]] | None:
        """The pods of one Job (None when the list fails: logged, never raised)."""
        try:
            return list(
                read_json(
                    self.core.list_namespaced_pod(
                        self.namespace, label_selector=f"job-name={name}", _preload_content=False
                    )
                ).get("items", [])
            )
        except ApiException as exc:
            log.event("k8s.pods.error", logging.WARNING, job=name, status=exc.status)
            return None

    def _container_times(self, name: str) -> tuple[datetime | None, datetime | None]:
        pods = self._polled_pods[name] if name in self._polled_pods else self._pods(name)
        return latest_container_times(pods) if pods else (None, None)

    def _pods_to_time(self, trial_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The pods of the Jobs whose container times this poll will read (`_timed`: a pod that
        started running, a Job that ended before it was seen running), by Job name: one list per
        `_POD_BATCH` Jobs instead of one each. A Job left out (one alone, a failed list) gets
        its own list as before."""
        names: list[str] = []
        for trial_id in trial_ids:
            name = self._name(trial_id)
            with self._lock:
                if trial_id in self._ended or trial_id in self._launching:
                    continue
                run = self._runs.get(name)
            job = self.cache.get(name)
            if job is None:  # ended and removed (TTL), as `_state` reads it
                job = self.cache.gone(name)
                if job is None or not is_finished(job):
                    continue
            phase = job_state(trial_id, job).phase
            if (phase == "running" and (run is None or run.started is None)) or (
                phase == "exited" and (run is None or run.last_started is None)
            ):
                names.append(name)
        out: dict[str, list[dict[str, Any]]] = {}
        if len(names) < 2:
            return out
        for i in range(0, len(names), _POD_BATCH):
            batch = names[i : i + _POD_BATCH]
            try:
                pods = read_json(
                    self.core.list_namespaced_pod(
                        self.namespace,
                        label_selector=f"job-name in ({','.join(batch)})",
                        _preload_content=False,
                    )
                ).get("items", [])
            except ApiException as exc:
                log.event("k8s.pods.error", logging.WARNING, jobs=len(batch), status=exc.status)
                continue
            listed: dict[str, list[dict[str, Any]]] = {name: [] for name in batch}
            for pod in pods:
                owner = ((pod.get("metadata") or {}).get("labels") or {}).get("job-name")
                if owner in listed:
                    listed[owner].append(pod)
            out.update(listed)
        return out

    def _check_stuck(
        self, trial_id: str, name: str, now: float, since: float, epoch: int
    ) -> TrialState | None:
        """A Job pending too long: lost if one of its pods cannot start on its own."""
        with self._lock:
            last = self._pods_checked.get(name)
            if last is not None and now - last < self.options.poll_interval_s:
                return None  # bounded: one pod list per Job per poll interval
            self._pods_checked[name] = now
        pods = self._pods(name)
        if pods is None:
            return None
        waited = now - since
        problems = [p for p in (pod_problem(pod) for pod in pods) if p]
        if not pods:  # the Job controller cannot create its pod: quota, admission webhook...
            problems = ["no pod was created (see `kubectl describe job`)"]
        # A pod pending with no visible problem (a node scaling up, a slow image pull) is left to
        # the loop's trials.queue_timeout_s: the backend never gives up on it by itself.
        if not problems:
            return None
        reason = f"{problems[0]} (pending for {round(waited)}s > pending_timeout_s)"
        state = TrialState(trial_id=trial_id, phase="lost", reason=reason)
        with self._lock:
            if self._epoch.get(trial_id, 0) != epoch or trial_id in self._launching:
                return None  # relaunched or cancelled since this poll read it: not this Job's
            self._ended[trial_id] = state
        log.event(
            "k8s.trial.lost", logging.WARNING, sweep=self.sweep, trial=trial_id, reason=reason
        )
        self._event(name, "TrialLost", reason)
        self._delete(name)
        return state

    def _create(self, name: str, body: dict[str, Any]) -> None:
        """Create the Job (the caller holds the trial's lock and took the first token)."""
        for attempt in range(_RECREATE_TRIES):
            if attempt:
                self.limiter.acquire()
            with self._lock:
                self.creates += 1
            try:
                created = read_json(
                    self.batch.create_namespaced_job(
                        self.namespace, body, _preload_content=False, _request_timeout=60
                    )
                )
                self.cache.put(created)  # poll right after launch must not say "lost"
                log.event("k8s.job.created", job=name, namespace=self.namespace)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise self._api_error("create", name, exc) from exc
            except ValidationError as exc:  # the client checks bodies against its models
                raise KubernetesBackendError(
                    f"Job {self.namespace}/{name}: the Job body is invalid ({exc.error_count()} "
                    f"errors, first: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}); "
                    "check backend.kubernetes options (tolerations, affinity...)"
                ) from exc
            # 409: already there. Ours, still running: idempotent. Being deleted: wait, retry.
            try:
                existing = read_json(
                    self.batch.read_namespaced_job(name, self.namespace, _preload_content=False)
                )
            except ApiException as exc:
                if exc.status == 404:
                    continue  # deleted meanwhile: create again
                raise self._api_error("get", name, exc) from exc
            if not existing["metadata"].get("deletionTimestamp") and not is_finished(existing):
                self.cache.put(existing)
                return
            time.sleep(_RECREATE_WAIT_S)
        raise KubernetesBackendError(
            f"Job {self.namespace}/{name}: an ended Job of this trial is still there after "
            f"{_RECREATE_TRIES * _RECREATE_WAIT_S:.0f}s; delete it (kubectl delete job {name})"
        )

    def _delete(self, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(
                name,
                self.namespace,
                body=client.V1DeleteOptions(propagation_policy="Background"),
                _preload_content=False,
            ).release_conn()
        except ApiException as exc:
            if exc.status != 404:
                raise self._api_error("delete", name, exc) from exc
        self.cache.forget(name)

    def log_tail(self, trial_id: str) -> bytes | None:
        """The end of the trainer container's log in the trial Job's newest pod (the one that
        ran last), before a relaunch or the Job's TTL deletes the pod. Two requests: the pod
        list and its log (`pods/log`). None when there is no pod or the API refuses (logged)."""
        name = self._name(trial_id)
        pods = self._pods(name)
        if not pods:
            return None
        pod = max(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
        pod_name = pod["metadata"]["name"]
        try:
            response = self.core.read_namespaced_pod_log(
                pod_name,
                self.namespace,
                container=CONTAINER,
                tail_lines=LOG_TAIL_LINES,
                limit_bytes=4 * LOG_TAIL_BYTES,  # a cap on the transfer, applied to the tail
                _preload_content=False,
                _request_timeout=30,
            )
            data = response.data
            response.release_conn()
        except ApiException as exc:
            hint = "the Role must allow get on pods/log" if exc.status == 403 else None
            log.event("k8s.log.unread", logging.WARNING, pod=pod_name, status=exc.status, hint=hint)
            return None
        return bytes(data[-LOG_TAIL_BYTES:])

    def milestone(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event on the controller Job (`kubectl describe job <release>-kubohb-controller`),
        when the controller runs in one; each reason at most once per MILESTONE_EVERY_S (a burst
        of new incumbents or lost trials is one Event, the log has every one)."""
        if self.owner is None:
            return
        now = time.monotonic()
        with self._lock:
            last = self._milestones.get(reason)
            if last is not None and now - last < MILESTONE_EVERY_S:
                return
            self._milestones[reason] = now
        self._event(self.owner.name, reason, message, uid=self.owner.uid, warning=warning)

    def _event(
        self,
        name: str,
        reason: str,
        message: str,
        *,
        uid: str | None = None,
        warning: bool = True,
    ) -> None:
        """Best effort: a Kubernetes Event on the Job, seen in `kubectl describe job`."""
        if uid is None:
            uid = ((self.cache.get(name) or {}).get("metadata") or {}).get("uid")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:10]}", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": name,
                "namespace": self.namespace,
                "uid": uid,
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning" if warning else "Normal",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "kubohb-controller"},
        }
        try:
            self.core.create_namespaced_event(self.namespace, body, _preload_content=False)
        except ApiException as exc:
            log.event("k8s.event.skipped", job=name, status=exc.status)

    def _api_error(self, verb: str, name: str, exc: ApiException) -> KubernetesBackendError:
        hint = {
            403: f"the controller's Role must allow `{verb}` on jobs in {self.namespace}",
            422: "the Job was rejected as invalid: check backend.kubernetes options",
        }.get(exc.status or 0, "check the API server and the controller's permissions")
        return KubernetesBackendError(
            f"Job {self.namespace}/{name}: {verb} failed (HTTP {exc.status} {exc.reason}); {hint}"
        )
