"""Backend factory: the sweep's ``backend.type`` to a Backend (Kubernetes imported only if used)."""

from __future__ import annotations

from controller.backends.base import Backend
from controller.sweep.spec import SweepSpec
from trainer.store import ENV_OUTAGE_TOLERANCE_S, Store


def make_backend(spec: SweepSpec, store: Store | None = None) -> Backend:
    """The backend the spec names. ``store``: the sweep's store, which the simulator writes
    results to as a trainer would (opened from the spec when not given)."""
    if spec.backend.type == "kubernetes":
        return _kubernetes(spec)
    if spec.backend.type == "simulated":
        return _simulated(spec, store)
    from controller.backends.local.backend import LocalBackend

    local = spec.backend.local
    return LocalBackend(
        spec.name,
        local.run_dir,
        spec.trainer.command,
        store_root=spec.store.root_url(),
        store_endpoint_url=spec.store.endpoint_url,
        store_region=spec.store.region,
        gpus=local.gpus,
        gpus_per_trial=spec.trainer.resources.gpus,
        env=trial_env(spec),
        cancel_grace_s=local.cancel_grace_s,
        log_cap_mb=local.log_cap_mb,
        log_upload_interval_s=local.log_upload_interval_s,
    )


def _kubernetes(spec: SweepSpec) -> Backend:
    """The one place that knows the Kubernetes backend's constructor."""
    from controller.backends.k8s.backend import (
        KubernetesBackend,  # kubernetes client: only when used
    )

    options = spec.backend.kubernetes
    secret = spec.store.credentials.secret
    if secret and not options.credentials_secret:  # `store.credentials.secret` feeds the pods
        options = options.model_copy(update={"credentials_secret": secret})
    return KubernetesBackend(
        sweep=spec.name,
        store_root=spec.store.root_url(),
        options=options,
        image=spec.trainer.image or "",
        command=spec.trainer.command,
        resources=spec.trainer.resources,
        env=trial_env(spec),
    )


def trial_env(spec: SweepSpec) -> dict[str, str]:
    """Trial environment besides KUBOHB_TRIAL: the store's endpoint and outage tolerance, and
    trainer.env (which may override them)."""
    env = {ENV_OUTAGE_TOLERANCE_S: f"{spec.store.outage_tolerance_s:g}", **spec.trainer.env}
    if spec.store.endpoint_url:
        env["KUBOHB_STORE_ENDPOINT"] = spec.store.endpoint_url
    if spec.store.region:
        env["KUBOHB_STORE_REGION"] = spec.store.region
    return env


def _simulated(spec: SweepSpec, store: Store | None) -> Backend:
    """The simulator: the sweep's trials in virtual time, results written to the sweep's store."""
    from controller.backends.simulated.backend import SimulatedBackend
    from controller.backends.simulated.objectives import SyntheticObjective
    from trainer.store import open_store

    if store is None:
        store = open_store(
            spec.store.root_url(),
            endpoint_url=spec.store.endpoint_url,
            region=spec.store.region,
            outage_tolerance_s=spec.store.outage_tolerance_s,
        )
    return SimulatedBackend(
        spec.name,
        store,
        spec.backend.simulated,
        objective=SyntheticObjective(spec.budget.max),
        budget_unit=spec.budget.unit,
    )
