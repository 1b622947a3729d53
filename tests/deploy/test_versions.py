"""One version: pyproject.toml's ``version`` is the package version, the chart's appVersion and
the tag of both images, wherever the repository writes one.

The chart cannot read pyproject.toml, so Chart.yaml repeats it; `make images` and
tests/deploy/image_check.sh derive the tag from pyproject.toml; docs, examples and values files
write it out. This test fails naming each file and line that disagrees. To release a new version,
change pyproject.toml's ``version`` and Chart.yaml's ``appVersion`` (and ``version``), then every
place this test lists.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

from tests.deploy.conftest import CHART, ROOT

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# A reference to one of the images `make images` names, ".../kubohb-trainer:" then a literal tag.
# Placeholders (<version>, $(IMAGE_TAG), ${TAG}) do not match; nor do made-up names that tests
# hand a fake API server (ghcr.io/kubohb/trainer:e2e).
IMAGE_REF = re.compile(r"kubohb-(?:controller|trainer):([A-Za-z0-9_][A-Za-z0-9_.-]*)")
# A YAML image block: `repository: .../kubohb-controller` followed by `tag: "<version>"`.
YAML_TAG = re.compile(
    r"kubohb-(?:controller|trainer)['\"]?[ \t]*\n[ \t]*tag:[ \t]*['\"]?([^'\"\s#]*)"
)
SET_TAG = re.compile(r"image\.tag=['\"]?([A-Za-z0-9_][A-Za-z0-9_.-]*)")
MAX_BYTES = 1 << 20


def repo_files() -> list[Path]:
    """Tracked files and new ones git does not ignore (a colleague's file not yet committed)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True, cwd=ROOT, timeout=60,
    ).stdout.decode()  # fmt: skip
    paths = [ROOT / name for name in listed.split("\0") if name]
    return [p for p in paths if p.is_file() and p.stat().st_size <= MAX_BYTES]


def written_tags() -> list[tuple[str, str]]:
    """(file:line, tag) of every image tag written out in the repository."""
    found = []
    for path in repo_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for pattern in (IMAGE_REF, YAML_TAG, SET_TAG):
            for match in pattern.finditer(text):
                tag = match.group(1).rstrip(".")
                line = text.count("\n", 0, match.start(1)) + 1
                found.append((f"{path.relative_to(ROOT)}:{line}", tag))
    return found


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == VERSION, (
        f"helm/kubohb/Chart.yaml appVersion {chart['appVersion']!r} != pyproject.toml version "
        f"{VERSION!r}: set both to the same version"
    )


def test_every_image_tag_in_the_repository_is_the_package_version() -> None:
    tags = written_tags()
    assert any(where.startswith("docs/") for where, _ in tags), "the scan found no docs example"
    wrong = [f"{where}: {tag}" for where, tag in tags if tag != VERSION]
    assert not wrong, f"image tags other than pyproject.toml's version {VERSION}: " + ", ".join(
        wrong
    )


def test_values_leave_the_image_tags_to_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == "", "values.yaml image.tag: leave empty (= appVersion)"
    trainer = values["sweep"]["trainer"]["image"]
    assert trainer == "", f"values.yaml sweep.trainer.image {trainer!r}: leave empty (required)"
    for path in sorted((CHART / "ci").glob("*.yaml")):
        ci = yaml.safe_load(path.read_text()) or {}
        tag = (ci.get("image") or {}).get("tag", "")
        assert tag in ("", VERSION), f"{path.relative_to(ROOT)} image.tag {tag!r} != {VERSION}"


def test_make_images_tags_both_images_with_the_package_version() -> None:
    env = {k: v for k, v in os.environ.items() if k != "IMAGE_TAG"}
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "images"],
        capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert f"-t kubohb-$t:{VERSION} " in dry.stdout, dry.stdout
    name = subprocess.run(
        ["bash", str(ROOT / "tests" / "deploy" / "image_check.sh"), "name", "trainer"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert name.stdout.strip() == f"localhost/kubohb-trainer:{VERSION}", name.stdout + name.stderr


def test_the_scan_finds_each_way_a_tag_is_written() -> None:
    trainer, controller = "kubohb-" + "trainer", "kubohb-" + "controller"  # not scanned here
    sample = (
        f"docker push registry.example.com/ml/{trainer}:9.9.9.\n"
        f'image:\n  repository: registry.example.com/ml/{controller}\n  tag: "9.9.8"\n'
        "helm install demo helm/kubohb --set image" + ".tag=9.9.7\n"
        f"make images  # {controller}:<version>, kubohb-$t:$(IMAGE_TAG)\n"
    )
    patterns = (IMAGE_REF, YAML_TAG, SET_TAG)
    found = [m.group(1).rstrip(".") for p in patterns for m in p.finditer(sample)]
    assert found == ["9.9.9", "9.9.8", "9.9.7"]
