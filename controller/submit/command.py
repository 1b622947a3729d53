"""`kubohb submit SWEEP.yaml`: validate here, create the sweep's ConfigMap and controller Job in a
namespace prepared by a `mode: namespace` install, and with ``--wait`` follow the sweep from the
store until its controller Job ends, exiting with the sweep's own code.

Exit codes: 0 finished (or stop.goal met), 1 an error (API, store, the controller failed, the
``--timeout`` passed), 2 bad input (the sweep file, a namespace without the install, the same
sweep name submitted with a different sweep file), 3 stopped by a cap, 4 stop.goal not met.

Idempotent: submitting the same file again (same name and suffix) creates nothing while the
controller Job exists, and waits on it; a controller Job that failed with an error (its retries
exhausted, its activeDeadlineSeconds) is replaced, its trial Jobs kept for the new controller to
adopt, so the re-run resumes the sweep from the store. API use (the submitter's own identity):
configmaps list/get/create, jobs get/create/delete, pods list (the exit code of a controller
that failed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.submit.follow import follow, say
from controller.submit.objects import (
    SETTINGS_KEY,
    SETTINGS_LABEL,
    SPEC_KEY,
    SubmitError,
    SubmitSettings,
    build_configmap,
    build_job,
    configmap_name,
    fullname,
    job_name,
    submitted_spec,
    sweep_name,
)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2
# Failed-condition reasons of a controller Job that a re-submit resumes: the controller erred
# (exit 1, OOM, retries spent) or ran out of time, not a sweep that ended (exit 2/3/4: FailJob).
RESUMABLE = ("BackoffLimitExceeded", "DeadlineExceeded")
_DELETE_WAIT_S = 30.0


def cmd_submit(args: argparse.Namespace) -> int:
    from controller.backends.k8s.client import (
        KubernetesBackendError,
        default_namespace,
        load_api_client,
    )
    from controller.sweep.smoke import smoke
    from controller.sweep.spec import SpecError, parse_sweep

    try:
        raw = yaml.safe_load(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not isinstance(raw, dict):
        print(f"error: {args.file}: a sweep file is a mapping", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        api, source = load_api_client()
    except KubernetesBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    namespace = args.namespace or default_namespace(None, {}, source)
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    try:
        settings = find_settings(core, namespace, args.install)
        name = sweep_name(raw, args.name_suffix)
        spec_dict = submitted_spec(raw, settings, name)
        text = yaml.safe_dump(spec_dict, sort_keys=False)
        spec = parse_sweep(text, args.file)
        if args.smoke:
            spec, text = smoke(spec)
            spec_dict = yaml.safe_load(text)
            name = sweep_name(spec_dict, None)  # <name>-smoke must fit too
    except SpecError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except SubmitError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ApiException as exc:
        print(f"error: {api_hint(exc, namespace, 'configmaps')}", file=sys.stderr)
        return EXIT_ERROR
    try:
        done = ensure_objects(core, batch, settings, name, spec_dict, text)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ApiException as exc:
        print(f"error: {api_hint(exc, namespace, 'jobs and configmaps')}", file=sys.stderr)
        return EXIT_ERROR
    say(
        f"sweep {name} in namespace {namespace}: {done}; store {spec.store.root_url()}/{name}; "
        f"controller: kubectl logs -f -n {namespace} job/{job_name(name)}"
    )
    if not args.wait:
        return EXIT_OK

    return follow(
        spec,
        batch,
        core,
        namespace,
        timeout_s=args.timeout,
        cancel_on_timeout=args.cancel_on_timeout,
        interval_s=args.poll_interval,
    )


def api_hint(exc: ApiException, namespace: str, what: str) -> str:
    if exc.status == 403:
        return f"HTTP 403 in {namespace}: your identity must be allowed to manage {what} there"
    return f"HTTP {exc.status} {exc.reason} in {namespace}"


def find_settings(core: client.CoreV1Api, namespace: str, install: str | None) -> SubmitSettings:
    found = core.list_namespaced_config_map(namespace, label_selector=f"{SETTINGS_LABEL}=true")
    items = list(found.items or [])
    if install is not None:
        items = [c for c in items if c.metadata.name == f"{fullname(install)}-submit"]
    if not items:
        raise SubmitError(
            f"namespace {namespace}: no kubohb namespace install"
            + (f" named {install}" if install else "")
            + " (its settings ConfigMap is missing); install it once: helm install kubohb "
            f"helm/kubohb -n {namespace} --set mode=namespace --set image.repository=... "
            "--set store.url=... (docs/ci.md)"
        )
    if len(items) > 1:
        names = ", ".join(
            sorted(c.metadata.labels.get("app.kubernetes.io/instance", "?") for c in items)
        )
        raise SubmitError(
            f"namespace {namespace}: several kubohb installs ({names}): pass --install"
        )
    text = (items[0].data or {}).get(SETTINGS_KEY)
    try:
        return SubmitSettings.model_validate_json(text or "")
    except ValueError as exc:
        raise SubmitError(
            f"ConfigMap {namespace}/{items[0].metadata.name}: {SETTINGS_KEY} is not the settings "
            f"this kubohb understands ({str(exc).splitlines()[0]}); upgrade the install or kubohb"
        ) from exc


def ensure_objects(
    core: client.CoreV1Api,
    batch: client.BatchV1Api,
    settings: SubmitSettings,
    name: str,
    spec: dict[str, Any],
    text: str,
) -> str:
    """Create the ConfigMap and the controller Job unless they exist; says what it did."""
    ns = settings.namespace
    made = []
    try:
        core.create_namespaced_config_map(ns, build_configmap(settings, name, text))
        made.append("ConfigMap")
    except ApiException as exc:
        if exc.status != 409:
            raise
        existing = core.read_namespaced_config_map(configmap_name(name), ns)
        theirs = yaml.safe_load((existing.data or {}).get(SPEC_KEY) or "{}") or {}
        if theirs != spec:
            fields = sorted(k for k in set(theirs) | set(spec) if theirs.get(k) != spec.get(k))
            raise SubmitError(
                f"sweep {name} was already submitted to {ns} with a different sweep file "
                f"(differs in: {', '.join(fields)}); submit it under another --name-suffix, or "
                f"remove the old one: kubectl delete job,configmap -n {ns} -l "
                f"kubohb.io/sweep={name}"
            ) from None
    body = build_job(settings, name)
    try:
        batch.create_namespaced_job(ns, body)
        made.append("controller Job")
    except ApiException as exc:
        if exc.status != 409:
            raise
        job = batch.read_namespaced_job(job_name(name), ns)
        failed = _condition(job, "Failed")
        if failed is None or failed.reason not in RESUMABLE:
            return "created " + " and ".join(made) if made else "already submitted: nothing created"
        # Orphan: the trial Jobs stay (the new controller adopts them); Background would delete
        # them with their owner
        batch.delete_namespaced_job(
            job_name(name), ns, body=client.V1DeleteOptions(propagation_policy="Orphan")
        )
        _recreate(batch, ns, body)
        return f"controller Job failed ({failed.reason}): replaced it, resuming from the store"
    return "created " + " and ".join(made)


def _recreate(batch: client.BatchV1Api, ns: str, body: dict[str, Any]) -> None:
    end = time.monotonic() + _DELETE_WAIT_S
    while True:
        try:
            batch.create_namespaced_job(ns, body)
            return
        except ApiException as exc:
            if exc.status != 409 or time.monotonic() > end:
                raise
            time.sleep(0.5)  # the old Job is still being deleted


def _condition(job: client.V1Job, kind: str) -> client.V1JobCondition | None:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None
