"""`kubohb submit --wait`: follow a submitted sweep until its controller Job ends.

Reads the sweep's state from the store (as `kubohb status` does) and the controller Job from the
API server, one of each per ``interval_s``; prints a line whenever the progress changes (plain
text with a time stamp, fit for a CI log), and returns the sweep's own exit code: from its stop
reason once the Job has ended (Complete, or Failed by the chart's FailJob rule on exit 2/3/4),
from the controller container's exit code when the controller failed before it could write one,
1 when the Job failed with an error or vanished, or the timeout passed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.submit.objects import job_name
from controller.sweep.journal import load_state
from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState, exit_code
from controller.sweep.trials import incumbent
from trainer.store import StoreError, open_store

EXIT_ERROR = 1


def say(text: str, err: bool = False) -> None:
    """One time-stamped line, plain text for a CI log (stderr for trouble)."""
    print(
        f"{datetime.now(UTC):%H:%M:%S} {text}", file=sys.stderr if err else sys.stdout, flush=True
    )


def progress_line(state: SweepState | None) -> str:
    if state is None:
        return "waiting for the controller to start the sweep (no state in the store yet)"
    trials = state.trials.values()
    done = sum(t.done for t in trials)
    running = sum(t.state == "RUNNING" for t in trials)
    queued = sum(t.state == "LAUNCHED" for t in trials)
    best = incumbent(state)
    parts = [
        f"{state.status}" + (f" ({state.stop_reason})" if state.stop_reason else ""),
        f"{done}/{len(state.trials)} trials done, {running} running, {queued} queued",
        f"{state.gpu_seconds / 3600:.2f} device-h",
    ]
    if best is not None:
        parts.append(f"incumbent {best['loss']:.4g} at budget {best['budget']:g}")
    return "; ".join(parts)


def follow(
    spec: SweepSpec,
    batch: client.BatchV1Api,
    core: client.CoreV1Api,
    namespace: str,
    *,
    timeout_s: float | None,
    cancel_on_timeout: bool,
    interval_s: float,
) -> int:
    store = open_store(
        spec.store.root_url(), endpoint_url=spec.store.endpoint_url, region=spec.store.region
    )
    name, job = spec.name, job_name(spec.name)
    start = time.monotonic()
    last = None
    warned = False
    while True:
        try:
            state = load_state(store, name)
        except (StoreError, ValueError) as exc:
            if not warned:  # a store blip must not end a CI job; say it once
                say(f"store unreadable, retrying: {exc}", err=True)
                warned = True
            state = None
        line = progress_line(state)
        if line != last:
            say(line)
            last = line
        try:
            current = batch.read_namespaced_job(job, namespace)
        except ApiException as exc:
            if exc.status != 404:
                say(f"reading Job {namespace}/{job}: HTTP {exc.status}; retrying", err=True)
                current = None
            else:
                return _gone(state, spec, namespace, job)
        ended = _ended(current) if current is not None else None
        if ended is not None:
            return _result(ended, state, spec, core, namespace, job)
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            say(f"gave up after --timeout {timeout_s:g}s; the sweep goes on", err=True)
            if cancel_on_timeout:
                batch.delete_namespaced_job(
                    job, namespace, body=client.V1DeleteOptions(propagation_policy="Background")
                )
                say(f"deleted Job {namespace}/{job} and its trial Jobs (--cancel-on-timeout)")
            return EXIT_ERROR
        time.sleep(interval_s)


def _ended(job: client.V1Job) -> tuple[str, str] | None:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type, f"{cond.reason or ''}: {cond.message or ''}".strip(": ")
    return None


def _final(state: SweepState | None, spec: SweepSpec, job_is: str) -> int | None:
    """The sweep's own exit code once the store says it stopped (None while it has not)."""
    if state is None or state.status == "running" or state.stop_reason is None:
        return None
    code = exit_code(state.stop_reason, spec.stop.goal is not None)
    say(f"sweep ended: {state.stop_reason} (exit {code}); controller Job {job_is}")
    return code


def _result(
    ended: tuple[str, str],
    state: SweepState | None,
    spec: SweepSpec,
    core: client.CoreV1Api,
    namespace: str,
    job: str,
) -> int:
    kind, why = ended
    code = _final(state, spec, kind)
    if code is not None:
        return code
    controller = _controller_exit(core, namespace, job)
    say(
        f"controller Job {kind} ({why or 'no reason given'}) without a stopped sweep in the store;"
        f" controller exit code {controller if controller is not None else 'unknown'}: kubectl "
        f"logs -n {namespace} job/{job}",
        err=True,
    )
    return 2 if controller == 2 else EXIT_ERROR


def _gone(state: SweepState | None, spec: SweepSpec, namespace: str, job: str) -> int:
    code = _final(state, spec, "gone")  # ended, then removed by its ttlSecondsAfterFinished
    if code is not None:
        return code
    say(f"controller Job {namespace}/{job} was deleted before the sweep ended", err=True)
    return EXIT_ERROR


def _controller_exit(core: client.CoreV1Api, namespace: str, job: str) -> int | None:
    """The exit code of the controller container in the Job's newest pod (None: unreadable)."""
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items or []
    except ApiException:
        return None
    newest: Any = max(
        pods,
        key=lambda p: p.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC),
        default=None,
    )
    for status in (newest.status.container_statuses if newest and newest.status else None) or []:
        terminated = status.state.terminated if status.state else None
        if status.name == "controller" and terminated is not None:
            return int(terminated.exit_code)
    return None
