"""The report as JUnit XML, for CI test views (GitLab, Jenkins, GitHub test reporters).

One ``testsuite`` for the sweep; one ``testcase`` per budget (rung), passed when at least one of
its trials finished with a loss (failed or still-running trials alone are no result, so a rung of
only those fails, with the counts in the message); one ``testcase`` per gate, failed with the
gate's line as the message. The layout follows the Ant/Jenkins JUnit schema (the "windyroad"
JUnit.xsd): ``properties``, ``system-out`` and ``system-err`` present, a timestamp without a time
zone (ours is UTC). tests/report/data/junit.xsd validates it.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET

from controller.report.summary import ReportSummary

# XML 1.0 forbids most control characters even escaped; a URL or config id could hold one
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(value: object) -> str:
    return _NOT_XML.sub("?", str(value))


def _seconds(x: float) -> str:
    return f"{max(0.0, x):.3f}"


def render_junit(s: ReportSummary, hostname: str | None = None) -> bytes:
    unit = s.budget_unit
    suite = ET.Element("testsuite")
    properties = ET.SubElement(suite, "properties")
    facts: list[tuple[str, object]] = [
        ("sweep", s.sweep),
        ("url", s.url),
        ("budget_unit", unit),
        ("trials_total", s.trials.total),
        ("trials_ok", s.trials.ok),
        ("trials_failed", s.trials.failed),
        ("trials_running", s.trials.running),
    ]
    if s.incumbent is not None:
        facts += [
            ("incumbent_config", s.incumbent.config_id),
            ("incumbent_loss", repr(s.incumbent.loss)),
            ("incumbent_budget", f"{s.incumbent.budget:g}"),
        ]
    facts += [(k, v) for k, v in (("gpu_hours", s.gpu_hours), ("cost", s.cost)) if v is not None]
    for name, value in facts:
        ET.SubElement(properties, "property", name=name, value=_x(value))
    failures = 0
    total_s = 0.0
    for b in s.per_budget:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_x(f"kubohb.{s.sweep}.budget"),
            name=f"budget {b.budget:g} {_x(unit)}",
            time=_seconds(b.wall_seconds),
        )
        total_s += b.wall_seconds
        if b.ok == 0:
            failures += 1
            message = (
                f"no trial on budget {b.budget:g} {unit} finished with a loss "
                f"({b.failed} failed, {b.running} running)"
            )
            failure = ET.SubElement(case, "failure", type="NoResult", message=_x(message))
            failure.text = _x(message)
    for g in s.gates:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_x(f"kubohb.{s.sweep}.gate"),
            name=f"{g.gate} {g.limit!r}",
            time=_seconds(0.0),
        )
        if not g.passed:
            failures += 1
            failure = ET.SubElement(case, "failure", type="GateFailed", message=_x(g.line))
            failure.text = _x(g.line)
    out = ET.SubElement(suite, "system-out")
    out.text = _x("\n".join(g.line for g in s.gates)) or None
    ET.SubElement(suite, "system-err")
    suite.attrib.update(
        name=_x(f"kubohb.{s.sweep}"),
        tests=str(len(s.per_budget) + len(s.gates)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=_seconds(total_s),
        timestamp=s.generated_at.strftime("%Y-%m-%dT%H:%M:%S"),  # UTC; the schema has no zone
        hostname=_x(hostname or socket.gethostname() or "localhost"),
    )
    ET.indent(suite)
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    return declaration + ET.tostring(suite, encoding="utf-8") + b"\n"
