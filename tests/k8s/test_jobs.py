"""The trial Job body: names, labels, placement per rung, pod security, validation (pure)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from controller.backends.base import Launch, Resources
from controller.backends.k8s.jobs import OwnerRef, build_job, placement_for
from controller.backends.k8s.names import job_name, sweep_selector, trial_labels
from controller.backends.k8s.options import KubernetesOptions, RungOverride
from trainer.contract import NAME_PATTERN

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
COMMAND = ["python", "-m", "trainer"]
names = st.from_regex(NAME_PATTERN, fullmatch=True)

SPOT_GPU = KubernetesOptions(
    namespace="ml",
    gpu_resource="nvidia.com/gpu",
    credentials_secret="kubohb-s3",
    image_pull_secrets=["regcred"],
    image_pull_policy="IfNotPresent",
    service_account_name="kubohb-trainer",
    node_selector={"cloud.google.com/gke-spot": "true"},
    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    affinity={
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}
                ]
            }
        }
    },
    priority_class_name="kubohb-low",
    runtime_class_name="nvidia",
    kueue_queue="gpu-queue",
    extra_labels={"team": "automl"},
    extra_annotations={"example.com/owner": "automl"},
    rungs=[
        RungOverride(
            rung=3,
            node_selector={"cloud.google.com/gke-provisioning": "standard"},
            priority_class_name="kubohb-high",
            gpu_resource="amd.com/gpu",
            kueue_queue="gpu-on-demand",
        )
    ],
)


def job(options: KubernetesOptions, rung: int = 0, **launch: Any) -> dict[str, Any]:
    return build_job(
        launch=Launch(
            sweep="cifar-sweep",
            trial_id="t-0007-b3",
            trial_url="s3://bucket/root/cifar-sweep/trials/t-0007-b3/trial.json",
            rung=rung,
            **launch,
        ),
        options=options,
        image="ghcr.io/kubohb/trainer:0.1.0",
        command=COMMAND,
        resources=Resources(gpus=1, cpu="4", memory="16Gi"),
        env={"KUBOHB_STORE_ENDPOINT": "http://minio:9000", "KUBOHB_STORE_REGION": "us-east-1"},
        namespace=options.namespace or "default",
        owner=OwnerRef(name="kubohb-controller", uid="1f0e8d4c-0000-4000-8000-000000000001"),
    )


@given(names, names)
def test_job_names_are_dns_labels_deterministic_and_distinct(sweep: str, trial: str) -> None:
    name = job_name(sweep, trial)
    assert len(name) <= 63 and DNS_LABEL.match(name)
    assert name == job_name(sweep, trial)
    # "a-b" + "c" and "a" + "b-c" must not share a Job
    assert job_name(sweep + "-x", trial) != job_name(sweep, "x-" + trial)


def test_labels_and_selector() -> None:
    labels = trial_labels("s", "t1", 2)
    assert labels == {
        "app.kubernetes.io/name": "kubohb",
        "app.kubernetes.io/component": "trial",
        "app.kubernetes.io/managed-by": "kubohb",
        "kubohb.io/sweep": "s",
        "kubohb.io/trial": "t1",
        "kubohb.io/rung": "2",
    }
    assert sweep_selector("s") == "app.kubernetes.io/managed-by=kubohb,kubohb.io/sweep=s"


def test_default_job_shape() -> None:
    body = job(KubernetesOptions(), deadline_s=100.0, queue_timeout_s=3600.0)
    spec = body["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert body["metadata"]["name"] == job_name("cifar-sweep", "t-0007-b3")
    assert spec["backoffLimit"] == 3 and spec["ttlSecondsAfterFinished"] == 3600
    # a backstop: the 100 s running deadline + the 3600 s queue limit (the Job's clock starts
    # before scheduling and the image pull; the controller enforces the running deadline itself)
    assert spec["activeDeadlineSeconds"] == 3700
    assert pod["restartPolicy"] == "Never"
    assert spec["podFailurePolicy"]["rules"] == [
        {
            "action": "FailJob",
            "onPodConditions": [],  # required by the schemas before 1.29
            "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [2]},
        },
        # status is required by the schemas before 1.35 (optional, defaulted, from 1.35)
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        # the trainer stopped on SIGTERM after a checkpoint: a disruption, not a failure
        {
            "action": "Ignore",
            "onPodConditions": [],
            "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [143]},
        },
    ]
    # SIGTERM to SIGKILL: time for the trainer's stop checkpoint and its upload
    assert pod["terminationGracePeriodSeconds"] == 120
    # the command is an argv list and the trial URL goes by env: no shell anywhere
    assert container["command"] == COMMAND and "args" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUBOHB_TRIAL"] == "s3://bucket/root/cifar-sweep/trials/t-0007-b3/trial.json"
    assert env["KUBOHB_STORE_ENDPOINT"] == "http://minio:9000"
    assert env["HOME"] == "/tmp" and env["TORCH_HOME"].startswith("/tmp/")
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"},
    }
    assert "envFrom" not in container and "suspend" not in spec
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "kubohb-controller",
            "uid": "1f0e8d4c-0000-4000-8000-000000000001",
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]
    assert "activeDeadlineSeconds" not in job(KubernetesOptions())["spec"]
    # no queue limit (trials.queue_timeout_s: null): no backstop, the controller alone decides
    assert "activeDeadlineSeconds" not in job(KubernetesOptions(), deadline_s=100.0)["spec"]


@pytest.mark.parametrize("grace", [1, 45, 600])
def test_the_termination_grace_period_is_the_option(grace: int) -> None:
    options = KubernetesOptions(termination_grace_s=grace)
    for rung in (0, 3):
        pod = job(options.model_copy(update={"rungs": SPOT_GPU.rungs}), rung=rung)
        assert pod["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == grace


@pytest.mark.parametrize("grace", [0, -5, 601, 1.5, "two minutes"])
def test_a_termination_grace_out_of_bounds_is_refused_naming_the_field(grace: object) -> None:
    # 0 would SIGKILL at once (no checkpoint); past 600 s a cluster-autoscaler scale-down kills
    # the pod anyway (its --max-graceful-termination-sec default)
    with pytest.raises(ValueError, match="termination_grace_s"):
        KubernetesOptions.model_validate({"termination_grace_s": grace})


def test_the_removed_startup_allowance_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"startup_allowance_s was removed.*queue_timeout_s"):
        KubernetesOptions.model_validate({"startup_allowance_s": 600})


def test_restricted_pod_security_standard() -> None:
    """The checks of the "restricted" profile (https://kubernetes.io/docs/concepts/security/
    pod-security-standards/) that apply to a pod spec, plus the read-only root file system."""
    pod = job(SPOT_GPU)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    psc, csc = pod["securityContext"], container["securityContext"]
    assert psc["runAsNonRoot"] is True and csc["runAsNonRoot"] is True
    assert psc["runAsUser"] == psc["runAsGroup"] == psc["fsGroup"] == 10001
    assert csc["allowPrivilegeEscalation"] is False and csc["privileged"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["readOnlyRootFilesystem"] is True
    assert not any(k in pod for k in ("hostNetwork", "hostPID", "hostIPC"))
    # only volume types the restricted profile allows, and scratch space for the read-only root
    assert all(set(v) - {"name"} <= {"emptyDir"} for v in pod["volumes"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    # no /dev/shm volume: the trainer has no DataLoader workers (data sits on the device)
    assert mounts == {"/tmp"}
    assert pod["automountServiceAccountToken"] is False


def test_placement_per_rung_spot_then_on_demand() -> None:
    cheap = job(SPOT_GPU, rung=0)
    top = job(SPOT_GPU, rung=3)
    cheap_pod, top_pod = cheap["spec"]["template"]["spec"], top["spec"]["template"]["spec"]
    assert cheap_pod["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
    assert top_pod["nodeSelector"] == {"cloud.google.com/gke-provisioning": "standard"}
    assert cheap_pod["priorityClassName"] == "kubohb-low"
    assert top_pod["priorityClassName"] == "kubohb-high"
    assert top_pod["tolerations"] == cheap_pod["tolerations"]  # not overridden: inherited
    assert "amd.com/gpu" in top_pod["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" in cheap_pod["containers"][0]["resources"]["limits"]
    assert cheap["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert top["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-on-demand"
    assert cheap["spec"]["suspend"] is True  # Kueue unsuspends on admission
    assert cheap_pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "kubohb-s3"}}]
    assert cheap_pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert cheap_pod["serviceAccountName"] == "kubohb-trainer"
    assert cheap_pod["runtimeClassName"] == "nvidia"
    assert cheap["metadata"]["labels"]["team"] == "automl"
    assert placement_for(SPOT_GPU, 1).priority_class_name == "kubohb-low"


def test_job_bodies_pass_kubernetes_validate_strict_cli(tmp_path: Path) -> None:
    """The CLI, --strict, newest Kubernetes it ships, on the default and the GPU/spot example."""
    bodies = [
        job(KubernetesOptions()),
        job(KubernetesOptions(), deadline_s=3.5),
        job(SPOT_GPU, rung=0, deadline_s=7200.0),
        job(SPOT_GPU, rung=3),
        job(KubernetesOptions(scratch_size_limit=None, ttl_seconds_after_finished=None)),
        job(KubernetesOptions(termination_grace_s=600)),
    ]
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(bodies))
    version = kubernetes_validate.latest_version()
    cli = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, str(path)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource job/") == len(bodies), done.stdout


def test_strict_validation_catches_a_wrong_field() -> None:
    """The validator really is strict (guards the test above against passing vacuously)."""
    body = job(KubernetesOptions())
    body["spec"]["template"]["spec"]["containers"][0]["comand"] = ["typo"]
    version = kubernetes_validate.latest_version()
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, version, strict=True)


def test_empty_command_is_rejected() -> None:
    with pytest.raises(ValueError, match="command"):
        build_job(
            launch=Launch(sweep="s", trial_id="t", trial_url="file:///x"),
            options=KubernetesOptions(),
            image="i",
            command=[],
            resources=Resources(),
            env={},
            namespace="default",
        )
