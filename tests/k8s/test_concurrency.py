"""KubernetesBackend called from several threads: launches from a thread pool (as the scheduler
makes them), polls and cancels meanwhile; the shared token bucket; the HTTP connection pool.

No assertion here is on speed: in-flight launches are held at a gate in the limiter's sleep, and
the rate limit is checked on an injected clock or as an upper bound on counted requests (a slow
machine only makes fewer)."""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from controller.backends.base import ExitCode, Launch
from controller.backends.k8s.backend import LAUNCH_CONCURRENCY, POOL_CONNECTIONS
from controller.backends.k8s.client import RateLimiter, ensure_pool_size
from controller.backends.k8s.names import job_name
from controller.backends.k8s.options import KubernetesOptions
from controller.backends.k8s.times import parse_time
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.conftest import NAMESPACE, Backends, wait_for
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.objects import JOBS, PODS

SWEEP = "sweep"


def _launch(trial: str) -> Launch:
    # no trainer runs in these tests (no kubelet): the trial.json need not exist
    return Launch(sweep=SWEEP, trial_id=trial, trial_url=f"file:///nowhere/{trial}/trial.json")


def _key(trial: str) -> tuple[str, str, str]:
    return (JOBS, NAMESPACE, job_name(SWEEP, trial))


def test_concurrent_launches_create_exactly_one_job_each(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    """200 trials, each launched twice, shuffled, from 16 threads; 20 of them already created by
    another controller and unknown to this one's cache (its watch is stopped), so their first
    create is a 409 that adopts the Job."""
    trials = [f"t{i:03d}" for i in range(200)]
    backend = backends(creates_per_second=None)
    backend.adopt()
    backend.watcher.stop()  # the cache learns of nothing but our own creates from now on
    backend.watcher.join(timeout=10)
    other = backends()  # a previous controller that got to some trials first
    for trial in trials[:20]:
        other.launch(_launch(trial))
    calls = [_launch(t) for t in trials] * 2
    random.Random(7).shuffle(calls)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(backend.launch, calls))  # re-raises the first exception, if any

    assert {t: apiserver.store.creates[_key(t)] for t in trials} == dict.fromkeys(trials, 1)
    assert {t: apiserver.store.conflicts[_key(t)] for t in trials} == {
        t: int(t in trials[:20]) for t in trials
    }
    assert backend.creates == 200  # 180 creates + 20 conflicts; duplicates sent nothing
    assert apiserver.counts["CREATE jobs"] == 220  # with the other controller's 20
    assert apiserver.counts["FETCH jobs"] == 20  # one GET per conflict, to adopt the Job
    states = backend.poll(trials)
    assert {s.phase for s in states.values()} == {"pending"}  # all known: no "lost"


def test_polls_and_cancels_during_a_launch_burst(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    """30 launches at once: 10 go through on the burst, 20 wait for a token (held at a gate).
    Meanwhile polls answer (in-flight trials are pending, a relaunched one not its old exit), a
    cancel of a queued launch is immediate and that launch then creates nothing."""
    backend = backends(creates_per_second=None)
    backend.adopt()
    backend.launch(_launch("old"))  # an attempt that ended: relaunched in the burst
    done = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
    apiserver.store.mutate(*_key("old"), lambda o: o.update(status=done))
    wait_for(lambda: backend.poll(["old"])["old"].phase == "exited", what="the old Job's end")

    gate = threading.Event()

    def held(seconds: float) -> None:  # a launch past the burst waits here until the gate opens
        gate.wait(60)

    backend.limiter = RateLimiter(0.001, burst=10, sleep=held)
    first = [f"b{i:02d}" for i in range(10)]  # take the burst's 10 tokens
    rest = [f"b{i:02d}" for i in range(10, 29)] + ["old"]  # then wait for the next ones
    trials = first + rest
    with ThreadPoolExecutor(len(trials)) as pool:
        futures = [pool.submit(backend.launch, _launch(t)) for t in first]
        wait_for(lambda: sum(apiserver.store.creates.values()) == 11, what="the burst's creates")
        futures += [pool.submit(backend.launch, _launch(t)) for t in rest]

        def launching() -> dict[str, Any]:
            states = backend.poll(trials)
            queued = {t for t, s in states.items() if s.reason == "launching"}
            return states if queued == set(rest) else {}

        states = wait_for(launching, what="20 launches queued for a token")
        assert {s.phase for s in states.values()} == {"pending"}  # neither lost nor exited
        assert all(states[t].run_s == 0 and states[t].started_at is None for t in rest)
        assert sum(apiserver.store.creates.values()) == 11  # the queued ones sent nothing
        victim = rest[0]
        backend.cancel(victim)  # does not wait for the queued launch
        assert backend.poll([victim])[victim].exit_code == ExitCode.CANCELLED
        gate.set()
        for future in futures:
            future.result()

    assert apiserver.store.creates[_key(victim)] == 0  # overtaken by the cancel: no Job
    assert apiserver.store.creates[_key("old")] == 2  # its old Job deleted, a new one created
    assert all(apiserver.store.creates[_key(t)] == 1 for t in trials if t not in (victim, "old"))
    states = backend.poll(trials)
    assert states[victim].exit_code == ExitCode.CANCELLED
    assert {s.phase for t, s in states.items() if t != victim} == {"pending"}
    assert all(s.reason != "launching" for s in states.values())


def test_concurrent_launches_stay_under_the_rate_limit(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    """Counted creates never exceed burst + rate x elapsed, from 8 threads (an upper bound: a
    slower machine only sends fewer)."""
    rate, burst = 20.0, 5
    backend = backends(creates_per_second=rate, creates_burst=burst)
    backend.adopt()
    started = time.monotonic()
    over: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch_count() -> None:
        while not stop.is_set():
            count = apiserver.counts["CREATE jobs"]  # read before the clock: a safe bound
            elapsed = time.monotonic() - started
            if count > burst + rate * elapsed + 1e-6:
                over.append((elapsed, count))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_count)
    watcher.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(backend.launch, [_launch(f"r{i:02d}") for i in range(35)]))
    elapsed = time.monotonic() - started
    stop.set()
    watcher.join()
    assert apiserver.counts["CREATE jobs"] == 35
    assert over == []
    assert elapsed >= (35 - burst) / rate  # the limiter made them wait at all
    assert backend.launch_rate() == rate


def test_token_bucket_shared_by_threads_on_an_injected_clock() -> None:
    """100 threads at the same instant: 30 pass on the burst, the others get successive slots
    1/rate apart, so any window of T seconds admits at most burst + rate x T of them."""
    rate, burst = 20.0, 30
    limiter = RateLimiter(rate, burst=burst, clock=lambda: 0.0, sleep=lambda s: None)
    waits: list[float] = []
    barrier = threading.Barrier(100)

    def caller() -> None:
        barrier.wait()
        waits.append(limiter.acquire())

    threads = [threading.Thread(target=caller) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.0] * burst + [k / rate for k in range(1, 71)])
    granted = sorted(waits)
    for i, start in enumerate(granted):
        for window in (0.0, 0.5, 1.0, 2.5):
            inside = sum(1 for t in granted[i:] if t <= start + window + 1e-9)
            assert inside <= burst + rate * window + 1e-9


def test_token_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(20.0, burst=30, clock=lambda: now[0], sleep=lambda s: None)
    assert [limiter.acquire() for _ in range(30)] == [0.0] * 30
    assert limiter.acquire() == pytest.approx(0.05)  # empty: the next slot is 1/rate away
    now[0] += 100.0  # a long idle time refills the bucket to the burst, not beyond
    assert sum(limiter.acquire() == 0.0 for _ in range(40)) == 30
    unlimited = RateLimiter(None, clock=lambda: now[0], sleep=lambda s: None)
    assert all(unlimited.acquire() == 0.0 for _ in range(1000))
    with pytest.raises(ValueError):
        RateLimiter(0.0)


def test_default_rate_and_launch_rate() -> None:
    options = KubernetesOptions()
    assert (options.creates_per_second, options.creates_burst) == (20.0, 30)
    assert KubernetesOptions(creates_per_second=None).creates_per_second is None
    with pytest.raises(ValueError):
        KubernetesOptions(creates_per_second=0)


def test_launch_rate_none_without_a_limit(backends: Backends) -> None:
    backend = backends(creates_per_second=None)
    assert backend.launch_rate() is None
    assert backend.launch_concurrency() == LAUNCH_CONCURRENCY


def test_connection_pool_is_sized_for_the_concurrency(
    backends: Backends, apiserver: RunningApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The given client (pool of 8) keeps working with a pool of POOL_CONNECTIONS: 16 threads
    launching at once reuse their connections instead of discarding them."""
    given = apiserver.api_client()
    assert given.rest_client.pool_manager.connection_pool_kw["maxsize"] == 8
    assert ensure_pool_size(given, POOL_CONNECTIONS) == POOL_CONNECTIONS
    assert ensure_pool_size(given, 4) == POOL_CONNECTIONS  # never shrunk
    backend = backends(creates_per_second=None)
    manager = backend.api.rest_client.pool_manager
    assert manager.connection_pool_kw["maxsize"] == POOL_CONNECTIONS
    backend.adopt()
    with (
        caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"),
        ThreadPoolExecutor(LAUNCH_CONCURRENCY) as pool,
    ):
        list(pool.map(backend.launch, [_launch(f"c{i:02d}") for i in range(64)]))
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert apiserver.counts["CREATE jobs"] == 64


def test_a_poll_reads_the_pods_of_many_newly_running_trials_in_batches(
    backends: Backends, apiserver: RunningApiServer
) -> None:
    """60 trials whose pods started since the last poll: their container start times come from
    two pod lists (`job-name in (...)`, 50 Jobs each), not 60."""
    trials = [f"p{i:02d}" for i in range(60)]
    with FakeKubelet(apiserver.store, lambda job, attempt: "timed") as kubelet:
        kubelet.run_seconds = 600.0
        backend = backends(creates_per_second=None)
        backend.adopt()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(backend.launch, map(_launch, trials)))

        def all_running() -> bool:
            jobs = apiserver.store.list(JOBS, NAMESPACE)[0]
            ready = [j for j in jobs if (j.get("status") or {}).get("ready") == 1]
            return len(ready) == 60 and all(
                (backend.cache.get(j["metadata"]["name"]) or {}).get("status", {}).get("ready")
                for j in ready
            )

        wait_for(all_running, what="60 running pods, seen by the watch")
        lists = apiserver.counts["LIST pods"]
        states = backend.poll(trials)
        assert apiserver.counts["LIST pods"] - lists == 2
        assert {s.phase for s in states.values()} == {"running"}
        pods = {p["metadata"]["labels"]["job-name"]: p for p in apiserver.store.list(PODS, None)[0]}
        for trial, state in states.items():
            started = pods[job_name(SWEEP, trial)]["status"]["containerStatuses"][0]["state"]
            assert state.started_at == parse_time(started["running"]["startedAt"])
        backend.poll(trials)
        assert apiserver.counts["LIST pods"] - lists == 2  # read once per pod start
