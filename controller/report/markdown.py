"""The report as GitHub-flavoured Markdown, for ``$GITHUB_STEP_SUMMARY`` or a pull request comment.

Pure: takes the summary (gates included) and the HTML page's path when one was written in the
same run. No HTML, no images (a step summary shows neither embedded PNGs nor scripts): the
incumbent, the best loss per budget, trial counts, compute and cost, the top five, the gates.
"""

from __future__ import annotations

import math
from typing import Any

from controller.report.incumbent import proposed
from controller.report.summary import ReportSummary

TOP = 5
# Inline Markdown that would change a cell's text: emphasis, code, links, HTML, entities, and the
# pipe that ends a cell. Backslash first, so the escapes added after it stay escapes.
_SPECIAL = "\\`*_[]<>|&~"


def text(value: object) -> str:
    """Plain text as Markdown inline text that renders as itself, on one line, safe in a cell."""
    out = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    for ch in _SPECIAL:
        out = out.replace(ch, "\\" + ch)
    return out


def code(value: object) -> str:
    """A path or URL as a code span (read verbatim) where it can be one; else escaped text.

    Not for table cells: a pipe inside a code span would still end the cell."""
    raw = str(value)
    if "`" in raw or "\n" in raw or "\r" in raw or not raw.strip():
        return text(raw)
    return f"`{raw}`"


def num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GFM table: header row, ``|---|`` separator, rows; every row has the header's columns.

    Cells are Markdown already (escape plain text with ``text``)."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells, the header {len(header)}")
    lines = ["| " + " | ".join(cells) + " |" for cells in [header, *rows]]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines)


def _value(v: Any) -> str:
    return num(v) if isinstance(v, float) else str(v)


def _config_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in sorted(config.items()))


def render_markdown(s: ReportSummary, html_page: str | None = None) -> str:
    unit = s.budget_unit
    parts = [f"## kubohb report: sweep {text(s.sweep)}", _facts(s, html_page)]
    if s.gates:
        rows = [["PASS" if g.passed else "**FAIL**", text(g.gate), text(g.line)] for g in s.gates]
        parts += ["### Gates", table(["result", "gate", "what was compared"], rows)]
    parts.append("### Incumbent")
    if s.incumbent is None:
        parts.append("No incumbent: no trial has a loss yet.")
    else:
        i = s.incumbent
        params = f"{i.params:,}" if i.params is not None else "unknown"
        parts.append(
            f"Config {text(i.config_id)} (trial {text(i.trial_id)}): loss **{num(i.loss)}** "
            f"at budget {i.budget:g} {text(unit)} (the largest budget with a result), "
            f"{params} parameters."
        )
        config_rows = [[text(k), text(_value(v))] for k, v in sorted(i.config.items())]
        parts.append(table(["parameter", "value"], config_rows))
    parts += ["### Loss per budget", _per_budget(s)]
    c = s.trials
    parts += [
        "### Trials by state",
        table(
            ["state", "trials"],
            [
                ["ok", str(c.ok)],
                ["failed", str(c.failed)],
                ["running (no result yet)", str(c.running)],
                ["unreadable (skipped)", str(c.skipped)],
                ["total read", str(c.total)],
            ],
        ),
        "### Compute and cost",
        table(
            ["what", "value"],
            [
                ["training hours (Σ train\\_seconds)", num(s.train_hours)],
                ["GPU-hours (controller)", num(s.gpu_hours)],
                ["cost (controller)", num(s.cost)],
            ],
        ),
    ]
    if s.proposals:
        rows = [
            [str(b.iteration), str(b.configs), str(b.model_based), str(b.random)]
            + ([str(b.unknown)] if any(x.unknown for x in s.proposals) else [])
            for b in s.proposals
        ]
        header = ["bracket", "configurations", "model-based", "random"]
        if any(b.unknown for b in s.proposals):
            header.append("unknown")
        parts += ["### Proposals per bracket", table(header, rows)]
    if s.top:
        parts += [f"### Top {min(TOP, len(s.top))} configurations", _top(s)]
    if s.notes:
        where = "the HTML report" if html_page else "`--json`"
        parts.append(f"{len(s.notes)} note(s) on skipped files: see {where}.")
    return "\n\n".join(parts) + "\n"


def _facts(s: ReportSummary, html_page: str | None) -> str:
    facts = [
        f"Store: {code(s.url)}",
        f"generated {s.generated_at.isoformat(timespec='seconds')}",
    ]
    if s.stop_reason:
        facts.append(f"stop reason: {text(s.stop_reason)}")
    lines = [" · ".join(facts)]
    if html_page is not None:
        lines.append(f"HTML report: {code(html_page)}")
    return "  \n".join(lines)  # two trailing spaces: a line break inside one paragraph


def _per_budget(s: ReportSummary) -> str:
    rows = [
        [
            f"{b.budget:g}",
            num(b.best_loss),
            text(b.best_config_id) if b.best_config_id else "–",
            str(b.ok),
            str(b.failed),
            str(b.running),
        ]
        for b in s.per_budget
    ]
    header = [f"budget ({text(s.budget_unit)})", "best loss", "config", "ok", "failed", "running"]
    return table(header, rows)


def _top(s: ReportSummary) -> str:
    rows = [
        [
            str(c.rank),
            text(c.config_id),
            f"{c.budget:g}",
            num(c.loss),
            f"{c.params:,}" if c.params is not None else "–",
            proposed(c.model_based),
            num(c.queued_s, 0) if c.queued_s is not None else "–",
            str(c.preemptions) if c.preemptions is not None else "–",
            text(_config_text(c.config)),
        ]
        for c in s.top[:TOP]
    ]
    header = ["rank", "config", "budget", "loss", "parameters", "proposed", "queued s"]
    return table([*header, "preempted", "config values"], rows)
