"""The tests play the Job controller and the kubelet: a thread that, for each new Job, makes a Pod,
runs its container command as a local subprocess with the Job's env (the real trainer contract),
and writes Job/Pod status the way Kubernetes does: active/ready/succeeded/failed, conditions,
exit codes, podFailurePolicy (FailJob / Ignore / Count), backoffLimit, activeDeadlineSeconds.

`script(job, attempt)` picks what happens to each pod attempt:
  "run"           run the container command
  "instant"       succeed at once without a process
  "timed"         succeed after `run_seconds` without a process (the benchmark's 1,000 trials)
  "preempt"       start, then get preempted: DisruptionTarget, exit 137 (not counted)
  "unschedulable" stay Pending: PodScheduled=False, reason Unschedulable
  "image-pull"    stay Pending: container waiting in ImagePullBackOff
  "hold"          stay Pending with no problem (a slow node)
  "delayed"       stay Pending (ContainerCreating) for `pending_seconds`, then "run" (a node
                  scaling up, a 5 GB image being pulled)

Pods carry the times a real kubelet writes: `status.startTime` when the pod is accepted (before
the image pull), the container's `state.running.startedAt` when it starts, and
`state.terminated.startedAt` / `finishedAt` when it ends. A Job's `status.startTime` is set when
the Job controller first syncs it unsuspended, and activeDeadlineSeconds counts from there.
A process's stdout and stderr go to a file per container, served as `pods/{name}/log` until the
pod is deleted.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.k8s.objects import CONFIGMAPS, JOBS, PODS, SECRETS, ApiError, ObjectStore, now_iso

REPO = Path(__file__).resolve().parents[2]
Script = Callable[[dict[str, Any], int], str]


@dataclass
class Attempt:
    namespace: str
    job: str
    uid: str
    index: int
    pod: str
    action: str
    deadline: float | None = None  # activeDeadlineSeconds
    started: float = field(default_factory=time.monotonic)  # the Job clock of this pod
    proc: subprocess.Popen[bytes] | None = None
    done: bool = False
    container_started: str | None = None  # state.running.startedAt, once it runs
    container: str = "trainer"  # the pod's (one) container's name


def _policy_action(job: dict[str, Any], exit_code: int, conditions: set[str]) -> tuple[str, int]:
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    for index, rule in enumerate(rules):
        codes = rule.get("onExitCodes")
        if codes:
            hit = exit_code in codes.get("values", [])
            if (codes.get("operator") == "In" and hit) or (
                codes.get("operator") == "NotIn" and not hit
            ):
                return rule["action"], index
        for cond in rule.get("onPodConditions") or []:
            if cond.get("type") in conditions:
                return rule["action"], index
    return "Count", -1


class FakeKubelet:
    def __init__(
        self, store: ObjectStore, script: Script | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.store = store
        self.script: Script = script or (lambda job, attempt: "run")
        self.env = env or {}
        self.run_seconds = 1.0  # of "timed" pods
        self.pending_seconds = 1.0  # of "delayed" pods
        self._seen: dict[tuple[str, str, str], str] = {}  # Job key -> uid already handled
        self.attempts: dict[str, Attempt] = {}  # job uid -> current attempt
        self.history: list[tuple[str, int, str]] = []  # (job name, attempt, outcome)
        self.failed: dict[str, int] = {}  # job uid -> counted failures
        self.processes = 0
        self.log_dir = Path(tempfile.mkdtemp(prefix="fake-kubelet-logs-"))
        self.termination_logs: dict[str, Path] = {}  # pod -> its container's termination log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self.store.cond:
            self.store.cond.notify_all()
        self._thread.join(timeout=10)
        for attempt in self.attempts.values():
            self._kill(attempt)
        shutil.rmtree(self.log_dir, ignore_errors=True)

    # -- the loop -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self.store.cond:
                self.store.cond.wait(0.05)
            for key in self.store.keys(JOBS):
                if self._seen.get(key) == self._uid(key):
                    continue
                try:
                    job = self.store.get(*key)
                except ApiError:
                    continue
                if (job.get("spec") or {}).get("suspend"):
                    continue  # queued (Kueue): looked at again when it changes
                self._seen[key] = job["metadata"]["uid"]
                if job["metadata"]["uid"] not in self.attempts and not _finished(job):
                    self._start(job, 0)
            live = {a.uid for a in self.attempts.values() if self._exists(a)}
            for uid, attempt in list(self.attempts.items()):
                if uid not in live:  # Job deleted: its pods go with it
                    self._kill(attempt)
                    del self.attempts[uid]
                elif not attempt.done:
                    try:
                        self._step(attempt)
                    except ApiError:  # deleted meanwhile
                        self._kill(attempt)

    def _uid(self, key: tuple[str, str, str]) -> str | None:
        with self.store.cond:
            job = self.store.objects.get(key)
            return None if job is None else job["metadata"]["uid"]

    def _exists(self, attempt: Attempt) -> bool:
        with self.store.cond:
            job = self.store.objects.get((JOBS, attempt.namespace, attempt.job))
            return job is not None and job["metadata"]["uid"] == attempt.uid

    def _start(self, job: dict[str, Any], index: int) -> None:
        meta = job["metadata"]
        name, ns, uid = meta["name"], meta["namespace"], meta["uid"]
        action = self.script(job, index)
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        template = job["spec"]["template"]
        labels = {**(template.get("metadata") or {}).get("labels", {}), "job-name": name}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        pod["status"]["startTime"] = now_iso()  # accepted by the kubelet, before the image pull
        self.store.create(PODS, ns, pod)
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        attempt = Attempt(ns, name, uid, index, pod_name, action, deadline)
        attempt.container = template["spec"]["containers"][0]["name"]
        self.attempts[uid] = attempt

        def running(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            status.setdefault("startTime", now_iso())
            status["active"] = 1
            status["ready"] = 0
            status.setdefault("failed", 0)
            status.setdefault("succeeded", 0)

        self.store.mutate(JOBS, ns, name, running)
        if action == "unschedulable":
            self._pod_status(
                attempt,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                        }
                    ],
                },
            )
        elif action == "image-pull":
            self._pod_status(
                attempt,
                {
                    "phase": "Pending",
                    "containerStatuses": _trainer_status(
                        {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": 'Back-off pulling image "x"',
                            }
                        }
                    ),
                },
            )
        elif action == "delayed":
            self._pod_status(
                attempt,
                {
                    "phase": "Pending",
                    "containerStatuses": _trainer_status(
                        {"waiting": {"reason": "ContainerCreating"}}
                    ),
                },
            )
        elif action in ("run", "preempt", "instant", "timed"):
            self._run(attempt, job)

    def _run(self, attempt: Attempt, job: dict[str, Any]) -> None:
        """The container starts: its process (for "run"), startedAt, the Job's ready count."""
        if attempt.action in ("run", "delayed"):
            attempt.proc = self._spawn(job, attempt.namespace, attempt.pod)
        attempt.container_started = now_iso()
        self._pod_status(
            attempt,
            {
                "phase": "Running",
                "containerStatuses": _trainer_status(
                    {"running": {"startedAt": attempt.container_started}}, ready=True
                ),
            },
        )
        self.store.mutate(
            JOBS, attempt.namespace, attempt.job, lambda o: o["status"].update(ready=1)
        )

    def _spawn(self, job: dict[str, Any], namespace: str, pod: str) -> subprocess.Popen[bytes]:
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        # the image's entry points (`kubohb`) are this interpreter's venv's
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {"PATH": path, "PYTHONPATH": str(REPO), **self.env}
        for ref in container.get("envFrom") or []:
            secret = self.store.get(SECRETS, namespace, ref["secretRef"]["name"])
            env.update(
                {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            )
        fields = {"metadata.name": pod, "metadata.namespace": namespace}  # the downward API
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "fieldRef" in (e.get("valueFrom") or {}):
                env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        # a configMap volume is its keys as files; a path under its mount, and the termination
        # log, point into this pod's own folder instead
        folder = self.log_dir / f"{namespace}_{pod}"
        folder.mkdir(exist_ok=True)
        paths = {"/dev/termination-log": str(folder / "termination-log")}
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            source = (volumes.get(mount["name"]) or {}).get("configMap")
            if source is None:
                continue
            data = self.store.get(CONFIGMAPS, namespace, source["name"]).get("data") or {}
            target = folder / mount["name"]
            target.mkdir(exist_ok=True)
            for item in source.get("items") or [{"key": k, "path": k} for k in data]:
                (target / item["path"]).write_text(data[item["key"]])
            paths[mount["mountPath"]] = str(target)
        self.termination_logs[pod] = Path(paths["/dev/termination-log"])
        args = [_remap(a, paths) for a in container.get("args") or []]
        self.processes += 1
        # the container's stdout and stderr, as the kubelet keeps them for `pods/{name}/log`
        out = self.log_dir / f"{namespace}_{pod}_{container['name']}.log"
        with self.store.cond:
            self.store.pod_logs.setdefault((namespace, pod), {})[container["name"]] = out
        with out.open("ab") as sink:
            return subprocess.Popen(
                container["command"] + args,
                env=env,
                cwd=REPO,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _step(self, attempt: Attempt) -> None:
        age = time.monotonic() - attempt.started
        if attempt.deadline is not None and age > attempt.deadline:
            self._kill(attempt)
            job = self.store.get(JOBS, attempt.namespace, attempt.job)
            self._end(
                attempt,
                job,
                None,
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
            return
        if attempt.action == "delayed" and attempt.container_started is None:
            if age > self.pending_seconds:
                self._run(attempt, self.store.get(JOBS, attempt.namespace, attempt.job))
            return
        if attempt.action == "instant" or (attempt.action == "timed" and age > self.run_seconds):
            self._pod_exit(attempt, self.store.get(JOBS, attempt.namespace, attempt.job), 0, set())
        elif attempt.action == "preempt" and age > 0.2:
            job = self.store.get(JOBS, attempt.namespace, attempt.job)
            self._pod_exit(attempt, job, 137, {"DisruptionTarget"})
        elif attempt.proc is not None and attempt.proc.poll() is not None:
            job = self.store.get(JOBS, attempt.namespace, attempt.job)
            code = attempt.proc.returncode  # killed by a signal: 128 + it, as a container runtime
            self._pod_exit(attempt, job, code if code >= 0 else 128 - code, set())

    def _pod_exit(
        self, attempt: Attempt, job: dict[str, Any], code: int, conditions: set[str]
    ) -> None:
        attempt.done = True
        phase = "Succeeded" if code == 0 else "Failed"
        self._pod_status(
            attempt,
            {
                "phase": phase,
                "conditions": [
                    {"type": c, "status": "True", "reason": "PreemptionByScheduler"}
                    for c in conditions
                ],
                "containerStatuses": _trainer_status(
                    {
                        "terminated": {
                            "exitCode": code,
                            "startedAt": attempt.container_started or now_iso(),
                            "finishedAt": now_iso(),
                            **self._termination_message(attempt.pod),
                        }
                    }
                ),
            },
        )
        if code == 0:
            self.history.append((attempt.job, attempt.index, "succeeded"))
            self._end(attempt, job, 0, None, None)
            return
        action, rule = _policy_action(job, code, conditions)
        self.history.append((attempt.job, attempt.index, f"exit {code}: {action}"))
        if action == "FailJob":
            message = (
                f"Container trainer for pod {attempt.namespace}/{attempt.pod} failed with "
                f"exit code {code} matching FailJob rule at index {rule}"
            )
            self._end(attempt, job, code, "PodFailurePolicy", message)
            return
        if action == "Count":
            self.failed[attempt.uid] = self.failed.get(attempt.uid, 0) + 1
            self.store.mutate(
                JOBS,
                attempt.namespace,
                attempt.job,
                lambda o: o["status"].update(failed=self.failed[attempt.uid]),
            )
            if self.failed[attempt.uid] > job["spec"].get("backoffLimit", 6):
                self._end(
                    attempt,
                    job,
                    code,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
                return
        self._start(job, attempt.index + 1)  # Ignore, or Count within the limit: a new pod

    def _end(
        self,
        attempt: Attempt,
        job: dict[str, Any],
        code: int | None,
        reason: str | None,
        message: str | None,
    ) -> None:
        attempt.done = True

        def finish(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            status.update(active=0, ready=0)
            now = now_iso()
            if reason is None:
                status["succeeded"] = 1
                status["completionTime"] = now
                conds: list[dict[str, str | None]] = [
                    {
                        "type": "SuccessCriteriaMet",
                        "status": "True",
                        "reason": "CompletionsReached",
                    },
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
                ]
            else:
                conds = [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": reason,
                        "message": message,
                    },
                    {"type": "Failed", "status": "True", "reason": reason, "message": message},
                ]
            status["conditions"] = [
                {**c, "lastTransitionTime": now, "lastProbeTime": now} for c in conds
            ]

        with contextlib.suppress(ApiError):
            self.store.mutate(JOBS, attempt.namespace, attempt.job, finish)

    def _termination_message(self, pod: str) -> dict[str, str]:
        """terminated.message: what the container wrote to its termination log (4 KiB at most)."""
        path = self.termination_logs.get(pod)
        if path is None or not path.exists():
            return {}
        return {"message": path.read_text(errors="replace")[:4096]}

    def _pod_status(self, attempt: Attempt, status: dict[str, Any]) -> None:
        for container in status.get("containerStatuses") or []:
            container["name"] = attempt.container
        with contextlib.suppress(ApiError):
            self.store.mutate(
                PODS, attempt.namespace, attempt.pod, lambda o: o.update(status=status)
            )

    @staticmethod
    def _kill(attempt: Attempt) -> None:
        if attempt.proc is not None and attempt.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(attempt.proc.pid, signal.SIGKILL)
            attempt.proc.wait(timeout=10)
        attempt.done = True


def _remap(arg: str, paths: dict[str, str]) -> str:
    for inside, outside in paths.items():
        if arg == inside or arg.startswith(f"{inside}/"):
            return outside + arg[len(inside) :]
    return arg


def _trainer_status(state: dict[str, Any], ready: bool = False) -> list[dict[str, Any]]:
    """A pod's containerStatuses: its one container in ``state`` (`_pod_status` names it)."""
    return [
        {
            "name": "trainer",
            "ready": ready,
            "restartCount": 0,
            "image": "x",
            "imageID": "",
            "state": state,
        }
    ]


def _finished(job: dict[str, Any]) -> bool:
    conds = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conds)
