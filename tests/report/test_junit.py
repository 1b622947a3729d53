"""`kubohb report --junit FILE`: valid against the committed JUnit schema (tests/report/data/
junit.xsd, the Ant/Jenkins rules), one testcase per budget and per gate, failures where due."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from controller.report.command import main
from controller.report.demo import write_demo_sweep
from tests.report.ci_sweeps import write_sweep
from trainer.store import FileStore

XSD = Path(__file__).parent / "data" / "junit.xsd"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(XSD)


def _cases(root: ET.Element) -> dict[str, ET.Element | None]:
    """testcase name → its failure element (None when it passed)."""
    return {c.attrib["name"]: c.find("failure") for c in root.iter("testcase")}


def test_demo_sweep_with_a_passing_and_a_failing_gate(
    tmp_path: Path, schema: xmlschema.XMLSchema, capsys: pytest.CaptureFixture[str]
) -> None:
    d = write_demo_sweep(FileStore(tmp_path), sweep="ju", iterations=2, seed=0, curve_points=3)
    base = write_sweep(tmp_path, "base", {"it0-c0-r0": (81.0, 0.0)})
    junit = tmp_path / "ci" / "junit.xml"
    args = [d.url, "--json", "--junit", str(junit), "--fail-if-loss-above", "0.9"]
    assert main([*args, "--baseline", base, "--fail-if-worse-by", "0.001"]) == 4
    err = capsys.readouterr().err
    schema.validate(junit)  # raises, naming the element, when the document breaks a rule
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuite" and root.attrib["name"] == "kubohb.ju"
    cases = _cases(root)
    budgets = [f"budget {b:g} epochs" for b in d.budgets]
    assert list(cases) == [*budgets, "fail-if-loss-above 0.9", "fail-if-worse-by 0.001"]
    assert all(cases[b] is None for b in budgets)
    assert cases["fail-if-loss-above 0.9"] is None
    failure = cases["fail-if-worse-by 0.001"]
    assert failure is not None and failure.attrib["type"] == "GateFailed"
    message = failure.attrib["message"]
    assert message.startswith(f"gate --fail-if-worse-by 0.001 (baseline {base}): FAIL: best loss")
    assert f"kubohb report: {message}" in err.splitlines()  # the line the CLI printed
    assert (root.attrib["tests"], root.attrib["failures"], root.attrib["errors"]) == ("7", "1", "0")
    props = {p.attrib["name"]: p.attrib["value"] for p in root.iter("property")}
    assert props["sweep"] == "ju" and props["incumbent_budget"] == "81"


def test_a_budget_without_a_finished_trial_fails(
    tmp_path: Path, schema: xmlschema.XMLSchema
) -> None:
    url = write_sweep(
        tmp_path,
        "partial",
        {
            "it0-c0-r0": (1.0, 0.4),
            "it0-c1-r0": (1.0, 0.3),
            "it0-c1-r1": (3.0, "failed"),
            "it0-c0-r1": (3.0, "running"),
        },
    )
    junit = tmp_path / "junit.xml"
    assert main([url, "--json", "--junit", str(junit)]) == 0  # rungs are no gate: exit 0
    schema.validate(junit)
    root = ET.parse(junit).getroot()
    cases = _cases(root)
    assert list(cases) == ["budget 1 epochs", "budget 3 epochs"]
    assert cases["budget 1 epochs"] is None
    failure = cases["budget 3 epochs"]
    assert failure is not None and failure.attrib["type"] == "NoResult"
    assert failure.attrib["message"] == (
        "no trial on budget 3 epochs finished with a loss (1 failed, 1 running)"
    )
    assert root.attrib["failures"] == "1" and root.attrib["tests"] == "2"


def test_the_schema_rejects_what_consumers_would(
    tmp_path: Path, schema: xmlschema.XMLSchema
) -> None:
    """The validation is real: documents that break the JUnit rules do not pass."""
    url = write_sweep(tmp_path, "one", {"it0-c0-r0": (1.0, 0.4)})
    junit = tmp_path / "junit.xml"
    assert main([url, "--json", "--junit", str(junit), "--fail-if-loss-above", "0.1"]) == 4
    schema.validate(junit)
    good = ET.parse(junit).getroot()

    def broken(change: str) -> ET.Element:
        root = ET.fromstring(ET.tostring(good))
        case = root.find("testcase")
        assert case is not None
        if change == "no classname":
            del case.attrib["classname"]
        elif change == "zoned timestamp":
            root.attrib["timestamp"] += "Z"
        elif change == "failure without type":
            failure = root.find("testcase/failure")
            assert failure is not None
            del failure.attrib["type"]
        elif change == "no properties":
            props = root.find("properties")
            assert props is not None
            root.remove(props)
        elif change == "tests not a number":
            root.attrib["tests"] = "many"
        return root

    changes = [
        "no classname",
        "zoned timestamp",
        "failure without type",
        "no properties",
        "tests not a number",
    ]
    for change in changes:
        assert not schema.is_valid(ET.tostring(broken(change)).decode()), change
