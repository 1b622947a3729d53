"""Kubernetes backend: API requests per trial and Job creation rate, 1,000 trials, loopback API.

    python -m benchmarks k8s_backend [--trials 1000] [--run-seconds 20] [--tick 2] [--reps 3]

Everything runs against the same API server emulation (tests/k8s: kmock extended) on 127.0.0.1 and
the same fake Job controller, whose pods "run" `--run-seconds` each without a process.

1. Requests per trial. A controller loop launches every trial, then polls the unfinished ones
   every `--tick` seconds until all ended:
   - kubohb: `KubernetesBackend` (one list + one watch per poll interval; `poll` reads the cache);
   - peer: the naive way, one GET per unfinished trial per tick (what a Katib-style per-trial
     status check does), with the same client and no model decoding, so it pays only for the
     requests.
   Both launch one after another with the rate limit off (creates_per_second = None), so the
   comparison is of the status requests.
2. Creation rate: Jobs/s with 1, 4, 8 and 16 threads calling `launch` at once (as the scheduler's
   launch pool does), at the default limit (creates_per_second 20, burst 30) and without a limit;
   `--reps` runs each, median and range. The API server's schema validation is off, so the client
   side is what is timed; the emulation's own thread CPU over the wall time shows it is not the
   bottleneck (client, emulator and fake kubelet share one process, one GIL).
3. A launch burst: `--trials` launches at the default limit from 8 threads while the loop polls
   the launched trials every `--tick` seconds: creation rate, poll latency during the burst,
   phases seen (never "lost"), API requests per trial until all ended.

Figures go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from controller.backends.base import Launch, Resources
from controller.backends.k8s.backend import KubernetesBackend
from controller.backends.k8s.jobs import build_job
from controller.backends.k8s.names import job_name
from controller.backends.k8s.options import KubernetesOptions
from controller.backends.k8s.status import job_state
from tests.k8s.apiserver import RunningApiServer
from tests.k8s.kubelet import FakeKubelet

NAMESPACE = "bench"
SWEEP = "bench"
IMAGE = "trainer:bench"
COMMAND = ["python", "-m", "trainer"]
RESOURCES = Resources(gpus=1, cpu="4", memory="16Gi")
ENV = {"KUBOHB_STORE_ENDPOINT": "http://s3:9000"}


@dataclass
class Figures:
    name: str
    requests: int  # every request to the API server for jobs and pods
    creates: int
    creates_per_s: float
    wall_s: float
    poll_ms: float  # mean time of one poll() over the unfinished trials

    def per_trial(self, trials: int) -> float:
        return self.requests / trials


def _launch(i: int) -> Launch:
    trial = f"t{i:05d}"
    return Launch(
        sweep=SWEEP, trial_id=trial, trial_url=f"s3://b/r/{SWEEP}/trials/{trial}/trial.json"
    )


DEFAULT = KubernetesOptions()  # the default limit: creates_per_second, creates_burst


def _options(rate: float | None, burst: int = DEFAULT.creates_burst) -> KubernetesOptions:
    return KubernetesOptions(
        namespace=NAMESPACE, creates_per_second=rate, creates_burst=burst, poll_interval_s=30
    )


def _backend(
    server: RunningApiServer, rate: float | None, burst: int = DEFAULT.creates_burst
) -> KubernetesBackend:
    return KubernetesBackend(
        sweep=SWEEP,
        store_root="s3://b/r",
        options=_options(rate, burst),
        image=IMAGE,
        command=COMMAND,
        resources=RESOURCES,
        env=ENV,
        api_client=server.api_client(),
    )


def _controller_loop(
    trials: int, tick: float, launch: Any, poll: Any
) -> tuple[float, float, float]:
    """Launch all, then poll the unfinished each tick; returns (create rate, wall s, poll ms)."""
    started = time.perf_counter()
    for i in range(trials):
        launch(_launch(i))
    create_rate = trials / (time.perf_counter() - started)
    waiting = {_launch(i).trial_id for i in range(trials)}
    poll_times: list[float] = []
    while waiting:
        time.sleep(tick)
        t0 = time.perf_counter()
        states = poll(sorted(waiting))
        poll_times.append(time.perf_counter() - t0)
        waiting -= {t for t, s in states.items() if s.phase in ("exited", "lost")}
    wall = time.perf_counter() - started
    return create_rate, wall, 1000 * sum(poll_times) / len(poll_times)


def run_kubohb(trials: int, run_s: float, tick: float) -> Figures:
    with (
        RunningApiServer(validate=False) as server,
        FakeKubelet(server.store, lambda j, a: "timed") as kubelet,
    ):
        kubelet.run_seconds = run_s
        backend = _backend(server, rate=None)
        backend.adopt()
        try:
            rate, wall, poll_ms = _controller_loop(trials, tick, backend.launch, backend.poll)
        finally:
            backend.close()
        requests = sum(
            n for key, n in server.counts.items() if key.endswith(" jobs") or key.endswith(" pods")
        )
        creates = server.counts["CREATE jobs"]
    return Figures("kubohb (watch)", requests, creates, rate, wall, poll_ms)


def run_naive(trials: int, run_s: float, tick: float) -> Figures:
    with (
        RunningApiServer(validate=False) as server,
        FakeKubelet(server.store, lambda j, a: "timed") as kubelet,
    ):
        kubelet.run_seconds = run_s
        batch = client.BatchV1Api(server.api_client())
        options = _options(rate=None)

        def launch(launch: Launch) -> None:
            body = build_job(  # the Job bodies the backend sends
                launch=launch,
                options=options,
                image=IMAGE,
                command=COMMAND,
                resources=RESOURCES,
                env=ENV,
                namespace=NAMESPACE,
            )
            batch.create_namespaced_job(NAMESPACE, body, _preload_content=False).release_conn()

        def poll(ids: list[str]) -> dict[str, Any]:
            out = {}
            for trial in ids:
                response = batch.read_namespaced_job(
                    job_name(SWEEP, trial), NAMESPACE, _preload_content=False
                )
                out[trial] = job_state(trial, json.loads(response.data))
            return out

        before = sum(server.counts.values())
        rate, wall, poll_ms = _controller_loop(trials, tick, launch, poll)
        requests = sum(server.counts.values()) - before
        creates = server.counts["CREATE jobs"]
    return Figures("peer (GET per trial per tick)", requests, creates, rate, wall, poll_ms)


@dataclass
class RateRun:
    jobs_per_s: float  # creates / wall time of the whole run
    sustained: float | None  # (creates - burst) / wall: the rate past the burst (limited runs)
    server_busy: float  # the emulation's thread CPU / wall
    process_cpu: float  # the whole process's CPU / wall (client, emulation, all threads)


def creation_rate(callers: int, rate: float | None, creates: int) -> RateRun:
    """`creates` launches from `callers` threads at once, against a fresh emulation."""
    with RunningApiServer(validate=False) as server:
        backend = _backend(server, rate)
        backend.adopt()
        try:
            cpu, busy, started = time.process_time(), server.cpu_seconds(), time.perf_counter()
            with ThreadPoolExecutor(callers) as pool:
                list(pool.map(backend.launch, map(_launch, range(creates))))
            wall = time.perf_counter() - started
            cpu, busy = time.process_time() - cpu, server.cpu_seconds() - busy
        finally:
            backend.close()
        assert server.counts["CREATE jobs"] == creates
    # after the burst's free tokens, one token per 1/rate from the start: the limiter's own rate
    burst = DEFAULT.creates_burst
    sustained = (creates - burst) / wall if rate is not None and creates > burst else None
    return RateRun(creates / wall, sustained, busy / wall, cpu / wall)


def _spread(values: list[float], digits: int = 1) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"[{min(values):.{digits}f}-{max(values):.{digits}f}]"
    )


@dataclass
class Burst:
    jobs_per_s: float
    launch_s: float
    polls: int  # polls answered while launches were in flight
    poll_ms: list[float]  # their latencies
    phases: Counter[str]  # phases those polls reported
    requests: int
    wall_s: float


def launch_burst(trials: int, run_s: float, tick: float, callers: int = 8) -> Burst:
    """All trials launched from `callers` threads at the default limit; the loop polls the
    trials whose launch returned every `tick` seconds, during the burst and until all ended."""
    with (
        RunningApiServer(validate=False) as server,
        FakeKubelet(server.store, lambda j, a: "timed") as kubelet,
    ):
        kubelet.run_seconds = run_s
        backend = _backend(server, DEFAULT.creates_per_second)
        backend.adopt()
        launched: list[str] = []
        ended: list[float] = []  # when each launch returned
        lock = threading.Lock()

        def one(i: int) -> None:
            launch = _launch(i)
            backend.launch(launch)
            with lock:  # the scheduler polls a trial once its launch returned
                launched.append(launch.trial_id)
                ended.append(time.perf_counter())

        started = time.perf_counter()
        poll_ms: list[float] = []
        phases: Counter[str] = Counter()
        pool = ThreadPoolExecutor(callers)
        try:
            futures = [pool.submit(one, i) for i in range(trials)]
            waiting: set[str] = set()
            in_burst = True
            while in_burst or waiting:
                time.sleep(tick)
                in_burst = not all(f.done() for f in futures)
                with lock:
                    waiting.update(launched)
                    launched.clear()
                t0 = time.perf_counter()
                states = backend.poll(sorted(waiting))
                if in_burst:
                    poll_ms.append(1000 * (time.perf_counter() - t0))
                    phases.update(s.phase for s in states.values())
                waiting -= {t for t, s in states.items() if s.phase in ("exited", "lost")}
            for future in futures:
                future.result()
        finally:
            pool.shutdown()
            backend.close()
        wall = time.perf_counter() - started
        launch_s = max(ended) - started
        requests = sum(
            n for key, n in server.counts.items() if key.endswith(" jobs") or key.endswith(" pods")
        )
    return Burst(trials / launch_s, launch_s, len(poll_ms), poll_ms, phases, requests, wall)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks k8s_backend")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--run-seconds", type=float, default=20.0, help="how long each pod runs")
    parser.add_argument("--tick", type=float, default=2.0, help="the controller's poll interval")
    parser.add_argument("--reps", type=int, default=3, help="runs of each creation-rate cell")
    parser.add_argument("--creates-limited", type=int, default=150)
    parser.add_argument("--creates-unlimited", type=int, default=400)
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}; {args.trials} trials, pods run {args.run_seconds:g} s, "
        f"poll every {args.tick:g} s; API server emulation on 127.0.0.1",
        flush=True,
    )
    ours = run_kubohb(args.trials, args.run_seconds, args.tick)
    peer = run_naive(args.trials, args.run_seconds, args.tick)
    print(
        f"{'':30} {'requests':>8} {'status':>7} {'per trial':>9} {'creates/s':>9} "
        f"{'poll ms':>8} {'wall s':>6}"
    )
    for f in (ours, peer):
        print(
            f"{f.name:30} {f.requests:8d} {f.requests - f.creates:7d} "
            f"{f.per_trial(args.trials):9.2f} {f.creates_per_s:9.1f} {f.poll_ms:8.2f} "
            f"{f.wall_s:6.1f}"
        )
    ours_status = max(ours.requests - ours.creates, 1)
    print(f"API requests per trial, peer / kubohb: {peer.requests / max(ours.requests, 1):.1f}x")
    print(
        "status requests (all but creates), peer / kubohb: "
        f"{(peer.requests - peer.creates) / ours_status:.0f}x"
    )
    print(
        f"poll() time over the unfinished trials, peer / kubohb: {peer.poll_ms / ours.poll_ms:.0f}x"
    )
    reps = args.reps
    limit = f"{DEFAULT.creates_per_second:g}/s, burst {DEFAULT.creates_burst}"
    print(
        f"\nJob creation rate, Jobs/s: median [min-max] of {reps} runs; {args.creates_limited} "
        f"creates at the default limit ({limit}), {args.creates_unlimited} without a limit"
    )
    print(
        f"{'callers':>7}  {'default: overall':>18} {'after the burst':>18}  "
        f"{'no limit':>20} {'emulation CPU':>13} {'process CPU':>11}"
    )
    for callers in (1, 4, 8, 16):
        limited = [
            creation_rate(callers, DEFAULT.creates_per_second, args.creates_limited)
            for _ in range(reps)
        ]
        free = [creation_rate(callers, None, args.creates_unlimited) for _ in range(reps)]
        print(
            f"{callers:7d}  {_spread([r.jobs_per_s for r in limited]):>18} "
            f"{_spread([r.sustained or 0.0 for r in limited]):>18}  "
            f"{_spread([r.jobs_per_s for r in free]):>20} "
            f"{statistics.median(r.server_busy for r in free):12.0%} "
            f"{statistics.median(r.process_cpu for r in free):11.0%}",
            flush=True,
        )
    burst = launch_burst(args.trials, args.run_seconds, args.tick)
    latencies = sorted(burst.poll_ms)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
    print(
        f"\nlaunch burst: {args.trials} trials at the default limit from 8 threads, polled every "
        f"{args.tick:g} s: {burst.launch_s:.1f} s of launches = {burst.jobs_per_s:.1f} Jobs/s; "
        f"{burst.polls} polls meanwhile, latency median "
        f"{statistics.median(latencies) if latencies else 0.0:.1f} ms, p95 {p95:.1f} ms, max "
        f"{max(latencies, default=0.0):.1f} ms; phases seen {dict(burst.phases)}; "
        f"{burst.requests} API requests ({burst.requests / args.trials:.2f} per trial), "
        f"{burst.wall_s:.0f} s until all ended"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
