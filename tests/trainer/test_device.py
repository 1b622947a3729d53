"""CPU thread limits for pods with a CPU quota (pure parsing of cgroup v2 ``cpu.max``)."""

from __future__ import annotations

from trainer.train import cgroup_cpus


def test_cgroup_cpu_quota_parsing() -> None:
    assert cgroup_cpus("200000 100000\n") == 2
    assert cgroup_cpus("150000 100000") == 2  # 1.5 CPUs: round up
    assert cgroup_cpus("50000 100000") == 1
    assert cgroup_cpus("max 100000") is None
    assert cgroup_cpus("garbage") is None
