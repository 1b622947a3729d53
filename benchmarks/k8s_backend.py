"""Kubernetes backend: API requests per trial and Job creation rate, 1,000 trials, loopback API.

    python -m benchmarks k8s_backend [--trials 1000] [--run-seconds 20] [--tick 2]

Both sides run against the same API server emulation (tests/k8s: kmock extended) on 127.0.0.1 and
the same fake Job controller, whose pods "run" `--run-seconds` each without a process. A controller
loop launches every trial, then polls the unfinished ones every `--tick` seconds until all ended:

- kubohb: `KubernetesBackend` (one list + one watch per poll interval; `poll` reads the cache);
- peer: the naive way, one GET per unfinished trial per tick (what a Katib-style per-trial status
  check does), with the same client and no model decoding, so it pays only for the requests.

Job creation rate is measured with the rate limit off (creates_per_second = 1e9, the API server's
schema validation off too, so the client side is what is timed), and once with the default limit
(5/s) to show the limiter holds. Figures go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
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


def _options(rate: float) -> KubernetesOptions:
    return KubernetesOptions(namespace=NAMESPACE, creates_per_second=rate, poll_interval_s=30)


def _backend(server: RunningApiServer, rate: float) -> KubernetesBackend:
    return KubernetesBackend(
        sweep=SWEEP,
        store_root="s3://b/r",
        options=_options(rate),
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
        backend = _backend(server, rate=1e9)
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
        options = _options(rate=1e9)

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


def limited_rate(creates: int = 25, rate: float = 5.0) -> tuple[float, float]:
    """(rate over all creates, sustained rate after the burst) with the default limit."""
    with RunningApiServer(validate=False) as server:
        backend = _backend(server, rate=rate)
        burst = int(backend.limiter.burst)
        try:
            started = time.perf_counter()
            after_burst = started
            for i in range(creates):
                backend.launch(_launch(i))
                if i == burst - 1:
                    after_burst = time.perf_counter()
            end = time.perf_counter()
            return creates / (end - started), (creates - burst) / (end - after_burst)
        finally:
            backend.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks k8s_backend")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--run-seconds", type=float, default=20.0, help="how long each pod runs")
    parser.add_argument("--tick", type=float, default=2.0, help="the controller's poll interval")
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
    overall, sustained = limited_rate()
    print(
        f"default limit (creates_per_second=5, burst 5), 25 creates: {overall:.2f} Jobs/s overall, "
        f"{sustained:.2f} Jobs/s after the burst"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
