"""KubernetesBackend over HTTP against the API server emulation, with the fake Job controller
running the synthetic trainer as real subprocesses."""

from __future__ import annotations

from typing import Any

import pytest

from controller.backends.base import ExitCode, TrialState
from controller.backends.k8s.client import KubernetesBackendError, RateLimiter
from controller.backends.k8s.names import job_name
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, Backends, wait_for
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import EVENTS, JOBS, PODS
from trainer.contract import FILE_RESULT, TrialResult, trial_prefix
from trainer.store import Store

SWEEP = "sweep"


def ended(backend: Any, ids: list[str], timeout: float = 60.0) -> dict[str, TrialState]:
    def check() -> dict[str, TrialState] | None:
        states = backend.poll(ids)
        return states if all(s.phase in ("exited", "lost") for s in states.values()) else None

    return wait_for(check, timeout, f"trials {ids} to end")


def result(store: Store, trial_id: str) -> TrialResult:
    raw = store.get_json(f"{trial_prefix(SWEEP, trial_id)}/{FILE_RESULT}")
    return TrialResult.model_validate(raw)


def creates(server: RunningApiServer, trial_id: str) -> int:
    return server.store.creates[(JOBS, NAMESPACE, job_name(SWEEP, trial_id))]


def test_trials_run_to_their_exit_codes(
    backends: Backends, kubelet: FakeKubelet, apiserver: RunningApiServer, trial_store: Store
) -> None:
    backend = backends()
    assert backend.adopt() == set()
    backend.launch(backends.launch(SWEEP, "ok", {"x": 0.5}))
    backend.launch(backends.launch(SWEEP, "bad", {"x": 0.5, "crash": 2}))
    backend.launch(backends.launch(SWEEP, "failed", {"x": 0.5, "fail": True}))
    # right after launch, before any watch event: known, not "lost"
    assert backend.poll(["ok"])["ok"].phase in ("pending", "running", "exited")
    states = ended(backend, ["ok", "bad", "failed"])
    assert (states["ok"].phase, states["ok"].exit_code) == ("exited", 0)
    assert (states["bad"].phase, states["bad"].exit_code) == ("exited", 2)  # FailJob: no retry
    assert states["failed"].exit_code == 0  # a failed result is still a written result
    assert result(trial_store, "ok").status == "ok"
    assert result(trial_store, "failed").status == "failed"
    assert [h for h in kubelet.history if h[0] == job_name(SWEEP, "bad")] == [
        (job_name(SWEEP, "bad"), 0, "exit 2: FailJob")
    ]
    assert backend.poll(["never-launched"])["never-launched"].phase == "lost"
    assert apiserver.handler is not None and apiserver.handler.rejected == []  # all Jobs valid
    # status came from the watch: no per-trial GETs
    assert apiserver.counts["FETCH jobs"] == 0


def test_restart_adopts_running_jobs_without_a_second_job(
    backends: Backends, kubelet: FakeKubelet, apiserver: RunningApiServer, trial_store: Store
) -> None:
    first = backends()
    launches = {t: backends.launch(SWEEP, t, {"x": 0.1, "sleep": 1.5}) for t in ("a", "b")}
    for launch in launches.values():
        first.launch(launch)
    wait_for(lambda: all(s.phase == "running" for s in first.poll(["a", "b"]).values()))
    first.close()  # the controller pod dies

    second = backends()  # ...and its replacement starts
    assert second.adopt() == {"a", "b"}
    for launch in launches.values():
        second.launch(launch)  # relaunching an adopted trial is a no-op
    # a launch that misses the cache (as if the watch lagged) hits 409 and adopts the Job
    second.cache.forget(job_name(SWEEP, "a"))
    second.launch(launches["a"])
    states = ended(second, ["a", "b"])
    assert all(s.exit_code == 0 for s in states.values())
    assert creates(apiserver, "a") == creates(apiserver, "b") == 1
    assert apiserver.store.conflicts[(JOBS, NAMESPACE, job_name(SWEEP, "a"))] == 1
    assert result(trial_store, "a").status == result(trial_store, "b").status == "ok"
    other = backends(sweep="other-sweep")
    assert other.adopt() == set()  # the label selector keeps sweeps apart
    assert second.adopt() == set()  # finished Jobs are not adopted


def test_preempted_pod_is_retried_without_counting(
    backends: Backends, apiserver: RunningApiServer, trial_store: Store
) -> None:
    script = lambda job, attempt: "preempt" if attempt == 0 else "run"  # noqa: E731
    with FakeKubelet(apiserver.store, script) as kubelet:
        backend = backends(backoff_limit=0)  # a counted failure would fail the Job at once
        backend.launch(backends.launch(SWEEP, "p", {"x": 0.2}))
        states = ended(backend, ["p"])
    assert (states["p"].phase, states["p"].exit_code) == ("exited", 0)
    name = job_name(SWEEP, "p")
    assert [h for h in kubelet.history if h[0] == name] == [
        (name, 0, "exit 137: Ignore"),
        (name, 1, "succeeded"),
    ]
    assert apiserver.store.get(JOBS, NAMESPACE, name)["status"]["failed"] == 0
    assert result(trial_store, "p").status == "ok"


def test_infra_exit_is_retried_up_to_the_backoff_limit(
    backends: Backends, kubelet: FakeKubelet
) -> None:
    backend = backends(backoff_limit=1)
    backend.launch(backends.launch(SWEEP, "infra", {"x": 0.2, "crash": 75}))
    state = ended(backend, ["infra"])["infra"]
    assert state.phase == "exited" and state.exit_code != 0
    assert state.reason is not None and "backoff" in state.reason
    name = job_name(SWEEP, "infra")
    assert [h[2] for h in kubelet.history if h[0] == name] == ["exit 75: Count"] * 2


def test_stuck_pods_are_lost_after_the_pending_timeout(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    behaviour = {"u": "unschedulable", "i": "image-pull", "h": "hold"}
    script = lambda job, attempt: behaviour[job["metadata"]["labels"]["kubohb.io/trial"]]  # noqa: E731
    now = [1000.0]
    with FakeKubelet(apiserver.store, script):
        backend = backends(pending_timeout_s=300, clock=lambda: now[0])
        for trial in behaviour:
            backend.launch(backends.launch(SWEEP, trial, {"x": 1}))
        wait_for(
            lambda: (
                all(apiserver.store.list(PODS, NAMESPACE)[0])
                and len(apiserver.store.list(PODS, NAMESPACE)[0]) == 3
            )
        )
        wait_for(
            lambda: all(
                (
                    apiserver.store.get(PODS, NAMESPACE, p["metadata"]["name"]).get("status") or {}
                ).get("phase")
                == "Pending"
                for p in apiserver.store.list(PODS, NAMESPACE)[0]
            )
        )
        assert {s.phase for s in backend.poll(behaviour).values()} == {"pending"}
        now[0] += 301
        states = backend.poll(behaviour)
    assert states["u"].phase == "lost" and "unschedulable" in (states["u"].reason or "")
    assert states["i"].phase == "lost" and "ImagePullBackOff" in (states["i"].reason or "")
    assert states["h"].phase == "pending"  # slow but not stuck: never declared lost
    deleted = {(k[2], policy) for k, policy in apiserver.store.deletes if k[0] == JOBS}
    assert deleted == {(job_name(SWEEP, "u"), "Background"), (job_name(SWEEP, "i"), "Background")}
    events = apiserver.store.list(EVENTS, NAMESPACE)[0]
    assert {e["reason"] for e in events} == {"TrialLost"}
    assert backend.poll(["u"])["u"].phase == "lost"  # stays lost, no flapping
    # A pod pending with no visible problem (a node scaling up, a 5 GB image pull) is never given
    # up on by the backend, however long: the loop's trials.queue_timeout_s decides
    # (tests/controller/test_cluster_time.py).
    now[0] += 100 * 300
    held = backend.poll(["h"])["h"]
    assert held.phase == "pending" and held.started_at is None and held.run_s == 0


def test_job_without_pods_is_lost_after_the_pending_timeout(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    now = [0.0]
    backend = backends(pending_timeout_s=60, clock=lambda: now[0])  # no kubelet: no pod ever
    backend.launch(backends.launch(SWEEP, "quota", {"x": 1}))
    assert backend.poll(["quota"])["quota"].phase == "pending"
    now[0] += 61
    state = backend.poll(["quota"])["quota"]
    assert state.phase == "lost" and "no pod" in (state.reason or "")


def test_deadline_and_cancel(
    backends: Backends, kubelet: FakeKubelet, apiserver: RunningApiServer
) -> None:
    backend = backends()
    # the Job's backstop (activeDeadlineSeconds = deadline + queue limit = 2 s) ends it
    backend.launch(
        backends.launch(SWEEP, "slow", {"x": 1, "sleep": 60}, deadline_s=1.0, queue_timeout_s=1)
    )
    backend.launch(backends.launch(SWEEP, "cancelled", {"x": 1, "sleep": 60}))
    wait_for(lambda: backend.poll(["cancelled"])["cancelled"].phase == "running")
    backend.cancel("cancelled")
    backend.cancel("cancelled")  # no error when already gone
    state = backend.poll(["cancelled"])["cancelled"]
    assert (state.phase, state.exit_code) == ("exited", ExitCode.CANCELLED)
    assert (
        (JOBS, NAMESPACE, job_name(SWEEP, "cancelled")),
        "Background",
    ) in apiserver.store.deletes
    # the pod went with the Job (garbage collection), so the process was killed
    wait_for(
        lambda: (
            not any(
                p["metadata"]["labels"].get("kubohb.io/trial") == "cancelled"
                for p in apiserver.store.list(PODS, NAMESPACE)[0]
            )
        )
    )
    slow = ended(backend, ["slow"], timeout=30)["slow"]
    assert (slow.phase, slow.exit_code) == ("exited", ExitCode.DEADLINE)


def test_owner_reference_is_the_controller_job(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    controller = apiserver.store.create(
        JOBS, NAMESPACE, {"metadata": {"name": "kubohb-controller"}, "spec": {}}
    )
    ref = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "kubohb-controller",
        "uid": controller["metadata"]["uid"],
        "controller": True,
    }
    apiserver.store.create(
        PODS, NAMESPACE, {"metadata": {"name": "ctl-xyz", "ownerReferences": [ref]}}
    )
    env = {"KUBOHB_POD_NAME": "ctl-xyz", "KUBOHB_NAMESPACE": NAMESPACE}
    backend = backends(environ=env)
    backend.launch(backends.launch(SWEEP, "owned", {"x": 1}))
    job = apiserver.store.get(JOBS, NAMESPACE, job_name(SWEEP, "owned"))
    assert job["metadata"]["ownerReferences"] == [
        {**ref, "controller": False, "blockOwnerDeletion": False}
    ]
    # uninstalling the chart deletes the controller Job: trial Jobs go with it
    apiserver.store.delete(JOBS, NAMESPACE, "kubohb-controller", "Background")
    assert (JOBS, NAMESPACE, job_name(SWEEP, "owned")) not in apiserver.store.objects
    laptop = backends(sweep="laptop")
    laptop.launch(backends.launch("laptop", "free", {"x": 1}))
    assert (
        "ownerReferences"
        not in apiserver.store.get(JOBS, NAMESPACE, job_name("laptop", "free"))["metadata"]
    )


def test_watch_relists_after_410_gone(backends: Backends, apiserver: RunningApiServer) -> None:
    backend = backends(poll_interval_s=1.0)
    backend.adopt()
    apiserver.store.force_gone = 1
    backend.launch(backends.launch(SWEEP, "w", {"x": 1}))
    wait_for(lambda: backend.watcher.stats.gone == 1, what="a 410 Gone")
    name = job_name(SWEEP, "w")
    apiserver.store.mutate(
        JOBS, NAMESPACE, name, lambda o: o.update(status={"active": 1, "ready": 1})
    )
    wait_for(
        lambda: backend.poll(["w"])["w"].phase == "running", what="the change after the relist"
    )
    assert backend.watcher.stats.lists >= 2 and backend.watcher.stats.errors == 0


def test_deleted_job_is_lost_but_a_finished_one_keeps_its_exit(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    backend = backends()
    for trial in ("gone", "ttl"):
        backend.launch(backends.launch(SWEEP, trial, {"x": 1}))
    done = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
    apiserver.store.mutate(JOBS, NAMESPACE, job_name(SWEEP, "ttl"), lambda o: o.update(status=done))
    wait_for(lambda: backend.poll(["ttl"])["ttl"].phase == "exited")
    for trial in (
        "gone",
        "ttl",
    ):  # someone deletes a running Job; the TTL controller a finished one
        apiserver.store.delete(JOBS, NAMESPACE, job_name(SWEEP, trial), "Background")
    wait_for(lambda: backend.poll(["gone"])["gone"].phase == "lost")
    assert backend.poll(["ttl"])["ttl"].exit_code == 0


def test_rate_limiter_holds_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(5.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(25):
        limiter.acquire()
    assert now[0] == pytest.approx((25 - 5) / 5.0)  # the burst of 5 is free, then 5 per second


def test_invalid_job_errors_name_the_job_and_the_fix(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    backend = backends(tolerations=[{"key": "gpu", "bogus": 1}])
    with pytest.raises(KubernetesBackendError) as err:
        backend.launch(backends.launch(SWEEP, "x", {"x": 1}))
    assert job_name(SWEEP, "x") in str(err.value) and "tolerations" in str(err.value)
    assert (JOBS, NAMESPACE, job_name(SWEEP, "x")) not in apiserver.store.objects


def test_quiet_watch_window_ends_in_a_fresh_list(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    """The bounded fallback poll: a watch window without events is followed by a list, so a
    watch that silently stopped delivering cannot leave the cache stale for longer."""
    backend = backends(poll_interval_s=1.0)
    backend.adopt()
    lists = backend.watcher.stats.lists
    wait_for(lambda: backend.watcher.stats.lists >= lists + 2, timeout=10, what="two relists")
    assert apiserver.counts["WATCH jobs"] >= 2 and backend.watcher.stats.errors == 0
