"""The Helm chart renders, validates strictly against the newest Kubernetes schema that
kubernetes-validate ships, grants only the listed permissions, and carries a valid sweep spec; it
asks for the values no default could fill, and refuses `helm upgrade` saying what to do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.backends.k8s.names import sweep_selector
from controller.cli import EXIT_BAD_INPUT, EXIT_CAPPED, build_parser
from controller.sweep.spec import parse_sweep
from controller.sweep.state import EXIT_GOAL_NOT_MET
from tests.deploy.conftest import (
    CHART,
    GPU_SPOT_VALUES,
    NAMESPACE,
    RELEASE,
    REQUIRED_VALUES,
    Render,
    one,
    run_helm,
    supported_kubernetes,
    template,
    validate_strictly,
)
from tests.deploy.pod_security import restricted_violations

CREATED_SECRET = [
    "--set", "store.credentials.accessKeyId=AKIDEXAMPLE",
    "--set", "store.credentials.secretAccessKey=wJalrXUtnFEMI-example-secret",
]  # fmt: skip
VALUE_SETS = {
    "default": [],
    "gpu-spot": ["--values", str(GPU_SPOT_VALUES)],
    "created-secret": CREATED_SECRET,
}
VALUE_IDS = list(VALUE_SETS)

# The Role, exactly: (apiGroup, resource, verb).
EXPECTED_GRANTS = {
    *{("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")},
    *{("", "pods", v) for v in ("get", "list")},
    ("", "pods/log", "get"),
    ("", "events", "create"),
}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "helm.sh/chart",
)


# `kubohb` as the console script runs it (main() returns the exit code).
CLI = "import sys; from controller.cli import main; sys.exit(main())"


def newest_kubernetes() -> str:
    from kubernetes_validate.utils import latest_version

    return str(latest_version())


@pytest.mark.parametrize("name", VALUE_IDS)
def test_helm_lint_strict(helm: str, name: str) -> None:
    proc = run_helm(
        helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *VALUE_SETS[name]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("name", VALUE_IDS)
def test_rendered_objects_validate_strictly(helm: str, name: str) -> None:
    manifest = template(helm, *VALUE_SETS[name])
    version = newest_kubernetes()
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, "-"],
        input=manifest, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    passed = proc.stdout.count(" passed for resource ")
    assert passed == len([d for d in yaml.safe_load_all(manifest) if d]), proc.stdout
    assert {"Job", "Role", "RoleBinding", "ServiceAccount", "ConfigMap", "Pod"} <= kinds


@pytest.mark.parametrize("name", VALUE_IDS)
def test_rendered_objects_validate_on_every_supported_kubernetes(helm: str, name: str) -> None:
    """From the chart's declared kubeVersion minimum to the newest schemas: an object valid on
    the newest only (a field required before it was defaulted) fails here."""
    docs = [d for d in yaml.safe_load_all(template(helm, *VALUE_SETS[name])) if d]
    versions = supported_kubernetes()
    assert versions[0] == "1.26.0" and len(versions) >= 12  # 1.26 .. 1.37 at least
    errors = [e for version in versions for e in validate_strictly(docs, version)]
    assert errors == []


def test_validator_is_strict() -> None:
    """The check above can fail: an unknown field is rejected."""
    bad = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {bogus: 1, template: {}}\n"
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", newest_kubernetes(), "-"],
        input=bad, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "bogus" in proc.stdout + proc.stderr


def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    grants = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule keys: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    grants.add((group, resource, verb))
    return grants


@pytest.mark.parametrize("name", VALUE_IDS)
def test_role_grants_exactly_the_listed_permissions(render: Render, name: str) -> None:
    objects = render(*VALUE_SETS[name])
    kinds = [o["kind"] for o in objects]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    role = one(objects, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _grants(role) == EXPECTED_GRANTS
    binding = one(objects, "RoleBinding")
    account = one(objects, "ServiceAccount", "controller")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    job = one(objects, "Job", "controller")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize("name", VALUE_IDS)
def test_configmap_holds_a_valid_sweep_spec(render: Render, name: str) -> None:
    objects = render(*VALUE_SETS[name])
    text = one(objects, "ConfigMap")["data"]["sweep.yaml"]
    spec = parse_sweep(text, f"ConfigMap sweep.yaml ({name})")
    assert spec.backend.type == "kubernetes"
    assert spec.backend.kubernetes.namespace == NAMESPACE
    trial_account = one(objects, "ServiceAccount", "trial")
    assert spec.backend.kubernetes.service_account_name == trial_account["metadata"]["name"]
    assert trial_account["automountServiceAccountToken"] is False


def test_kubohb_validate_accepts_the_rendered_spec(render: Render, tmp_path: Any) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        one(render("--values", str(GPU_SPOT_VALUES)), "ConfigMap")["data"]["sweep.yaml"]
    )
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "validate", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpu_spot_values_reach_the_backend_options(render: Render) -> None:
    spec = parse_sweep(
        one(render("--values", str(GPU_SPOT_VALUES)), "ConfigMap")["data"]["sweep.yaml"]
    )
    k8s = spec.backend.kubernetes
    assert k8s.node_selector == {
        "karpenter.sh/capacity-type": "spot",
        "nvidia.com/gpu.product": "NVIDIA-L4",
    }
    assert k8s.kueue_queue == "gpu-spot"
    assert k8s.image_pull_secrets == ["registry-example"]
    top = {r.rung: r for r in k8s.rungs}[3]
    assert top.node_selector is not None
    assert top.node_selector["karpenter.sh/capacity-type"] == "on-demand"
    assert top.kueue_queue == "gpu-on-demand"


def _env_from(pod_spec: dict[str, Any]) -> list[str]:
    return [e["secretRef"]["name"] for e in pod_spec["containers"][0].get("envFrom", [])]


def test_created_secret_is_wired_to_controller_trials_and_test(render: Render) -> None:
    objects = render(*CREATED_SECRET)
    secret = one(objects, "Secret")
    name = secret["metadata"]["name"]
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    cm_text = one(objects, "ConfigMap")["data"]["sweep.yaml"]
    assert "wJalrXUtnFEMI" not in cm_text and "AKIDEXAMPLE" not in cm_text
    spec = parse_sweep(cm_text)
    assert spec.backend.kubernetes.credentials_secret == name
    assert spec.store.credentials.secret == name and spec.store.credentials.env
    assert _env_from(one(objects, "Job", "controller")["spec"]["template"]["spec"]) == [name]
    assert _env_from(one(objects, "Pod", "test")["spec"]) == [name]


def test_existing_secret_is_used_by_name_and_not_created(render: Render) -> None:
    objects = render("--values", str(GPU_SPOT_VALUES))
    assert not [o for o in objects if o["kind"] == "Secret"]
    spec = parse_sweep(one(objects, "ConfigMap")["data"]["sweep.yaml"])
    assert spec.backend.kubernetes.credentials_secret == "kubohb-store"
    assert _env_from(one(objects, "Job", "controller")["spec"]["template"]["spec"]) == [
        "kubohb-store"
    ]


def test_without_credentials_pods_use_the_platform_identity(render: Render) -> None:
    objects = render()
    assert not [o for o in objects if o["kind"] == "Secret"]
    spec = parse_sweep(one(objects, "ConfigMap")["data"]["sweep.yaml"])
    assert spec.backend.kubernetes.credentials_secret is None
    assert not spec.store.credentials.env
    assert _env_from(one(objects, "Job", "controller")["spec"]["template"]["spec"]) == []


def test_controller_job_runs_the_sweep_and_knows_its_pod(render: Render) -> None:
    job = one(render(), "Job", "controller")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert job["spec"]["backoffLimit"] >= 1
    rules = job["spec"]["podFailurePolicy"]["rules"]
    # with status, which the schemas before 1.35 require
    ignore = {"type": "DisruptionTarget", "status": "True"}
    assert {"action": "Ignore", "onPodConditions": [ignore]} in rules
    # Bad spec (2), and stopped by a cap (3) or a goal not met (4) where args leave out
    # --stopped-is-success, end the Job instead of resuming into the same end.
    assert {
        "action": "FailJob",
        "onPodConditions": [],  # required by the schemas before 1.29
        "onExitCodes": {
            "containerName": "controller",
            "operator": "In",
            "values": [EXIT_BAD_INPUT, EXIT_CAPPED, EXIT_GOAL_NOT_MET],
        },
    } in rules
    container = pod["containers"][0]
    assert [*container["command"], *container["args"]] == [
        "kubohb", "run", "/etc/kubohb/sweep.yaml", "--no-progress", "--stopped-is-success",
        "--termination-log", "/dev/termination-log",
    ]  # fmt: skip
    # a capped sweep ends the Job Complete, its reason in the pod's termination message
    parsed = build_parser().parse_args(container["args"])
    assert parsed.stopped_is_success and parsed.termination_log == "/dev/termination-log"
    assert container.get("terminationMessagePath", "/dev/termination-log") == "/dev/termination-log"
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBOHB_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["KUBOHB_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/kubohb"]]["configMap"]["items"] == [
        {"key": "sweep.yaml", "path": "sweep.yaml"}
    ]
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_controller_job_is_not_adopted_as_a_trial(render: Render) -> None:
    """The backend adopts Jobs matching its sweep selector after a restart: never its own Job."""
    labels = one(render(), "Job", "controller")["metadata"]["labels"]
    selector = dict(part.split("=", 1) for part in sweep_selector("demo").split(","))
    assert any(labels.get(k) != v for k, v in selector.items())


@pytest.mark.parametrize("name", VALUE_IDS)
def test_pods_pass_the_restricted_pod_security_standard(render: Render, name: str) -> None:
    objects = render(*VALUE_SETS[name])
    pods = {
        "controller": one(objects, "Job", "controller")["spec"]["template"]["spec"],
        "helm test": one(objects, "Pod", "test")["spec"],
    }
    for what, spec in pods.items():
        assert restricted_violations(spec) == [], what
        for container in spec["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert spec["securityContext"]["runAsUser"] == 10001


def test_pod_security_check_reports_violations() -> None:
    """The check above can fail: a root, privileged pod with a hostPath breaks several rules."""
    pod = {
        "hostNetwork": True,
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    problems = restricted_violations(pod)
    for needle in ("hostNetwork", "hostPath", "privileged", "runAsNonRoot", "runAsUser", "seccomp"):
        assert any(needle in p for p in problems), (needle, problems)


@pytest.mark.parametrize("name", VALUE_IDS)
def test_every_object_carries_the_standard_labels(render: Render, name: str) -> None:
    objects = render(*VALUE_SETS[name])
    sweep = parse_sweep(one(objects, "ConfigMap")["data"]["sweep.yaml"]).name
    for obj in objects:
        labels = obj["metadata"]["labels"]
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert missing == [], f"{obj['kind']} {obj['metadata']['name']}: missing {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["kubohb.io/sweep"] == sweep


def test_helm_test_pod_is_a_test_hook(render: Render) -> None:
    pod = one(render(), "Pod", "test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["command"][:2] == ["python", "/etc/kubohb/helm-test.py"]
    assert "helm-test.py" in one(render(), "ConfigMap")["data"]
    assert not [o for o in render("--set", "tests.enabled=false") if o["kind"] == "Pod"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "sweep.name=Bad_Name"], "/sweep/name"),
        (["--set", "sweep.store.url=s3://x/y"], "sweep.store: set by the chart"),
        (["--set", "kubernetes.namespace=other"], "kubernetes.namespace: set by the chart"),
        (["--set", "store.credentials.accessKeyId=only-one"], "set both accessKeyId and"),
        (["--set", "store.url=gs://bucket"], "/store/url"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "unknownKey=1"], "unknownKey"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(
    helm: str, args: list[str], message: str
) -> None:
    proc = run_helm(helm, "template", "demo", str(CHART), *REQUIRED_VALUES, *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_notes_say_how_to_follow_the_sweep(helm: str) -> None:
    proc = run_helm(
        helm, "install", "demo", str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
        *REQUIRED_VALUES, "--set", "store.endpointUrl=http://minio.storage:9000",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "kubectl logs -f -n sweeps job/demo-kubohb-controller" in notes
    assert (
        "kubohb status s3://my-bucket/kubohb/demo --endpoint-url http://minio.storage:9000" in notes
    )
    assert "helm test demo" in notes
    assert "`helm upgrade` is refused" in notes


def _undocumented_keys(lines: list[str]) -> list[str]:
    """Chart knobs (top-level keys, their children, and sweep.trainer's) without a comment on
    the line above or at the end of the line."""
    missing: list[str] = []
    path: list[str] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z_][\w.-]*):", line)
        if not match:
            continue
        depth = len(match[1]) // 2
        path = [*path[:depth], match[2]]
        knob = depth <= 1 or (path[:2] == ["sweep", "trainer"] and depth == 2)
        above = lines[number - 1].strip() if number else ""
        if knob and not above.startswith("#") and " # " not in line:
            missing.append(".".join(path))
    return missing


def test_every_value_is_documented_in_values_yaml() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    assert _undocumented_keys(lines) == []
    assert _undocumented_keys(["a:", "  b: 1"]) == ["a", "a.b"]  # the check itself can fail


# ---------------------------------------------------------------- sweep.space and sweep.stop

# An inline space; ints and strings only, which `--set` types as the values file does.
PARAMETERS = [
    {"name": "batch_size", "type": "int", "low": 16, "high": 256, "log": True},
    {"name": "optimizer", "type": "categorical", "choices": ["adam", "sgd"]},
]
SET_PARAMETERS = [
    "--set", "sweep.space.parameters[0].name=batch_size",
    "--set", "sweep.space.parameters[0].type=int",
    "--set", "sweep.space.parameters[0].low=16",
    "--set", "sweep.space.parameters[0].high=256",
    "--set", "sweep.space.parameters[0].log=true",
    "--set", "sweep.space.parameters[1].name=optimizer",
    "--set", "sweep.space.parameters[1].type=categorical",
    "--set", "sweep.space.parameters[1].choices={adam,sgd}",
]  # fmt: skip


def _values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _as_values(set_args: tuple[str, ...]) -> dict[str, Any]:
    """``--set a.b=v`` pairs as the nested mapping a values file would hold."""
    values: dict[str, Any] = {}
    for pair in set_args[1::2]:
        path, value = pair.split("=", 1)
        *parents, leaf = path.split(".")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def _sweep_yaml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    text = one(objects, "ConfigMap")["data"]["sweep.yaml"]
    parse_sweep(text, "ConfigMap sweep.yaml")  # the controller accepts its own spec
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("form", ["values file", "--set", "values file and --set"])
def test_given_parameters_never_get_the_builtin_space(
    render: Render, tmp_path: Path, form: str
) -> None:
    """Helm merges a user's map into the chart's default map key by key: a default `builtin`
    would join the user's `parameters`, and the controller refuses a space with both."""
    space = {"sweep": {"space": {"parameters": PARAMETERS}}}
    if form == "values file":
        everything = _as_values(REQUIRED_VALUES)
        everything["sweep"]["space"] = space["sweep"]["space"]
        args = ["--values", _values_file(tmp_path, everything)]
    elif form == "--set":
        args = SET_PARAMETERS
    else:
        args = ["--values", _values_file(tmp_path, space), *REQUIRED_VALUES]
    assert _sweep_yaml(render(*args))["space"] == {"parameters": PARAMETERS}


def test_without_a_space_the_builtin_one_is_searched(render: Render) -> None:
    assert _sweep_yaml(render())["space"] == {"builtin": "zela2018"}


def test_builtin_and_parameters_from_two_sources_are_refused(helm: str, tmp_path: Path) -> None:
    builtin = _values_file(tmp_path, {"sweep": {"space": {"builtin": "zela2018"}}})
    proc = run_helm(
        helm, "template", RELEASE, str(CHART), *REQUIRED_VALUES, "--values", builtin,
        *SET_PARAMETERS,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "sweep.space: give either builtin or parameters, not both" in proc.stderr


def test_given_stop_caps_get_no_default_cap(render: Render) -> None:
    """The same merge: the chart's `max_iterations: 4` must not end a sweep capped otherwise."""
    assert _sweep_yaml(render())["stop"] == {"max_iterations": 4}
    stop = _sweep_yaml(render("--values", str(GPU_SPOT_VALUES)))["stop"]
    assert "max_iterations" not in stop and stop["max_gpu_hours"] == 200


# ---------------------------------------------------------------- values no default can fill

REQUIRED = [pair.split("=")[0] for pair in REQUIRED_VALUES[1::2]]


@pytest.mark.parametrize("command", [["template"], ["install", "--dry-run=client"]])
def test_chart_defaults_alone_fail_naming_every_required_value(
    helm: str, command: list[str]
) -> None:
    proc = run_helm(helm, *command, RELEASE, str(CHART), "--namespace", NAMESPACE)
    assert proc.returncode != 0
    assert "required values are not set" in proc.stderr, proc.stderr
    for name in REQUIRED:
        assert f"\n  {name}: " in proc.stderr, (name, proc.stderr)


@pytest.mark.parametrize("name", REQUIRED)
def test_a_required_value_left_empty_is_named(helm: str, name: str) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), *REQUIRED_VALUES, "--set", f"{name}=")
    assert proc.returncode != 0
    named = [n for n in REQUIRED if f"  {n}: " in proc.stderr]
    assert named == [name], proc.stderr


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_a_real_data_set_needs_a_location_or_download(
    helm: str, render: Render, dataset: str
) -> None:
    """The trainer image holds no data set: without a location or download every trial fails."""
    chosen = [*REQUIRED_VALUES, "--set", f"sweep.trainer.dataset={dataset}"]
    proc = run_helm(helm, "template", RELEASE, str(CHART), *chosen)
    assert proc.returncode != 0
    assert "sweep.trainer.data: the trainer image holds no data set" in proc.stderr, proc.stderr
    for where in ("data.location=s3://ml-datasets/" + dataset, "data.download=true"):
        trainer = _sweep_yaml(render(*chosen, "--set", f"sweep.trainer.{where}"))["trainer"]
        assert trainer["dataset"] == dataset and trainer["data"]


@pytest.mark.parametrize("path", sorted(CHART.glob("ci/*.yaml")), ids=lambda p: p.name)
def test_each_ci_values_file_sets_the_required_values_itself(render: Render, path: Path) -> None:
    assert _sweep_yaml(render("--values", str(path)))["trainer"]["image"]


# ---------------------------------------------------------------- helm upgrade


def test_helm_upgrade_is_refused_with_what_to_do_instead(helm: str) -> None:
    """A Job's pod template is immutable: an upgrade would end in an obscure API error."""
    proc = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--is-upgrade",
        *REQUIRED_VALUES,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "helm upgrade is not supported" in proc.stderr, proc.stderr
    assert f"`helm uninstall {RELEASE} -n {NAMESPACE}`" in proc.stderr
    assert "the same sweep.name (demo) resumes it from state.json" in proc.stderr
    # an install renders (`helm upgrade --install` of a new release is an install)
    assert run_helm(helm, "template", RELEASE, str(CHART), *REQUIRED_VALUES).returncode == 0
