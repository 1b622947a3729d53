"""The "restricted" Pod Security Standard (baseline + restricted controls, Kubernetes docs,
policy version latest) as a pure check of a pod spec: one message per violation.

Kept in the tests so the chart's pods are judged by the same rules the admission controller
applies; the ephemeral-container and Windows controls do not apply to these pods.
"""

from __future__ import annotations

from typing import Any

_ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"spec.{field} must be false")
    pod_ctx = pod.get("securityContext") or {}
    for vol in pod.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= _ALLOWED_VOLUMES:
            problems.append(f"volume {vol['name']}: type {sorted(kinds)} not allowed")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    for ctr in [*pod.get("initContainers", []), *pod["containers"]]:
        where = f"container {ctr['name']}"
        ctx = ctr.get("securityContext") or {}
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: may add only NET_BIND_SERVICE")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser must not be 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in _SECCOMP_OK:
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in ctr.get("ports", [])):
            problems.append(f"{where}: hostPort not allowed")
    return problems
