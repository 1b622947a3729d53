"""The chart's metrics part (values `metrics.*`): the controller's endpoint, its Service, the
optional ServiceMonitor and Grafana dashboard, and that every dashboard query names a metric the
controller exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.sweep.metrics import SweepMetrics
from controller.sweep.spec import parse_sweep
from tests.deploy.conftest import (
    CHART,
    NAMESPACE,
    Render,
    one,
    run_helm,
    supported_kubernetes,
    validate_strictly,
    with_required,
)
from tests.sweeps import synthetic_sweep

ALL_ON = (
    "--set", "metrics.enabled=true",
    "--set", "metrics.serviceMonitor.enabled=true",
    "--set", "metrics.serviceMonitor.labels.release=prom",
    "--set", "metrics.dashboard.enabled=true",
    "--set", "controller.podAnnotations.team=ml",
)  # fmt: skip


def _controller(objects: list[dict[str, Any]]) -> dict[str, Any]:
    job = one(objects, "Job", "controller")
    return dict(job["spec"]["template"])


def test_metrics_are_off_by_default(render: Render) -> None:
    objects = render()
    assert {o["kind"] for o in objects} >= {"Job", "ConfigMap"}
    assert not [o for o in objects if o["kind"] in ("Service", "ServiceMonitor")]
    assert not [o for o in objects if o["metadata"]["name"].endswith("-dashboard")]
    pod = _controller(objects)
    container = pod["spec"]["containers"][0]
    assert "--metrics-port" not in container["args"] and "ports" not in container
    assert "annotations" not in pod["metadata"]


def test_enabled_the_service_selects_the_controller_pod_and_its_port(render: Render) -> None:
    objects = render(*ALL_ON)
    pod = _controller(objects)
    container = pod["spec"]["containers"][0]
    args = container["args"]
    assert args[-4:] == ["--metrics-port", "9090", "--metrics-addr", "0.0.0.0"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert pod["metadata"]["annotations"] == {
        "team": "ml",  # the values' own annotations stay beside them
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    service = one(objects, "Service")
    labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    # nothing else the chart renders carries the selector's labels (the helm test pod, say)
    others = [
        o for o in objects
        if o["kind"] == "Pod"
        and service["spec"]["selector"].items() <= o["metadata"]["labels"].items()
    ]  # fmt: skip
    assert others == []
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    # the built-in kinds are valid on every Kubernetes the chart supports (a CRD's are not known)
    builtin = [o for o in objects if o["kind"] != "ServiceMonitor"]
    versions = supported_kubernetes()
    assert [e for v in (versions[0], versions[-1]) for e in validate_strictly(builtin, v)] == []


def _exported() -> tuple[set[str], set[str]]:
    """Every sample name the controller's registry can export, and its gauges'."""
    spec = parse_sweep(yaml.safe_dump(synthetic_sweep(Path("/nonexistent"))))
    names, gauges = set(), set()
    for family in SweepMetrics(spec).registry.collect():
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
        elif family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        else:
            names.add(family.name)
            gauges.add(family.name)
    return names, gauges


def test_every_dashboard_query_names_a_metric_the_controller_exports(render: Render) -> None:
    maps = [o for o in render(*ALL_ON) if o["metadata"]["name"].endswith("-dashboard")]
    assert len(maps) == 1 and maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(maps[0]["data"]["kubohb.json"])
    exported, gauges = _exported()
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    used = {m for e in exprs for m in re.findall(r"\bkubohb_[a-z_]+", e)}
    assert used and used <= exported, used - exported
    assert gauges <= used, gauges - used  # every gauge of the controller is on the board
    assert {"kubohb_request_seconds_bucket", "kubohb_request_errors_total"} <= used
    assert board["templating"]["list"][1]["query"]["query"] == "label_values(kubohb_trials, sweep)"


def test_a_service_monitor_without_the_endpoint_is_refused(helm: str) -> None:
    proc = run_helm(
        helm, "template", "r", str(CHART), "--namespace", NAMESPACE,
        *with_required(("--set", "metrics.serviceMonitor.enabled=true")),
    )  # fmt: skip
    assert proc.returncode != 0 and "metrics.serviceMonitor.enabled" in proc.stderr


@pytest.mark.parametrize("bad", ["metrics.port=0", "metrics.serviceMonitor.interval=often"])
def test_bad_metrics_values_are_rejected_naming_the_field(helm: str, bad: str) -> None:
    proc = run_helm(
        helm, "template", "r", str(CHART), "--namespace", NAMESPACE,
        *with_required(("--set", bad)),
    )  # fmt: skip
    assert proc.returncode != 0 and bad.split("=")[0].split(".")[-1] in proc.stderr
