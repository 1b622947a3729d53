"""`helm test`: the store is reachable with the release's credentials, and the controller's
ServiceAccount holds exactly the Role's permissions (and no secrets access).

Runs in the controller image: python /etc/kubohb/helm-test.py /etc/kubohb/sweep.yaml
Exit 0 = every check passed; otherwise one line per failed check.
"""

import os
import sys

# (group, resource, subresource, verb, expected): what the Kubernetes backend needs, plus three
# permissions it must not have.
ACCESS = [
    *[("batch", "jobs", "", v, True) for v in ("create", "get", "list", "watch", "delete")],
    *[("", "pods", "", v, True) for v in ("get", "list")],
    ("", "pods", "log", "get", True),
    ("", "events", "", "create", True),
    ("", "secrets", "", "get", False),
    ("", "pods", "", "watch", False),
    ("batch", "jobs", "", "deletecollection", False),
]


def check_store(spec_path: str) -> list[str]:
    from controller.sweep.spec import load_sweep
    from trainer.store import open_store

    spec = load_sweep(spec_path)
    store = open_store(
        spec.store.root_url(), endpoint_url=spec.store.endpoint_url, region=spec.store.region
    )
    key = f"{spec.name}/.helm-test/{os.environ.get('KUBOHB_POD_NAME', 'probe')}"
    try:
        store.put(key, b"kubohb helm test")
        if store.get(key) != b"kubohb helm test":
            return [f"store {store.url(key)}: read back different bytes"]
        store.delete(key)
    except Exception as exc:  # the report must name every failure, whatever its type
        return [f"store {store.url(key)}: {type(exc).__name__}: {exc}"]
    print(f"ok store read/write/delete {store.url(key)}")
    return []


def check_rbac(namespace: str, api: object = None) -> list[str]:
    """One SelfSubjectAccessReview per ACCESS row; `api` is a kubernetes ApiClient (in-cluster
    configuration when None)."""
    from kubernetes import client, config

    if api is None:
        config.load_incluster_config()
    auth = client.AuthorizationV1Api(api)
    failures = []
    for group, resource, sub, verb, expected in ACCESS:
        attrs = client.V1ResourceAttributes(
            namespace=namespace, group=group, resource=resource, subresource=sub or None, verb=verb
        )
        review = auth.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
            )
        )
        name = f"{verb} {resource}{'/' + sub if sub else ''}"
        if review.status.allowed != expected:
            want = "allowed" if expected else "denied"
            failures.append(f"rbac: {name} in {namespace} should be {want}")
        else:
            print(f"ok rbac {name}: {'allowed' if expected else 'denied'}")
    # The call the backend makes first after a restart (adoption).
    try:
        batch = client.BatchV1Api(api)
        batch.list_namespaced_job(namespace, label_selector="kubohb.io/sweep", limit=1)
        print("ok rbac list jobs")
    except client.exceptions.ApiException as exc:
        failures.append(f"rbac: list jobs in {namespace}: HTTP {exc.status} {exc.reason}")
    return failures


def main() -> int:
    spec_path = sys.argv[1] if len(sys.argv) > 1 else "/etc/kubohb/sweep.yaml"
    namespace = os.environ.get("KUBOHB_NAMESPACE", "default")
    failures = check_store(spec_path) + check_rbac(namespace)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
