"""`kubohb report --format markdown`: GitHub-flavoured tables that parse, cells that say what
the sweep holds, and text that renders as itself (pipes, backslashes, emphasis escaped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from controller.report.command import main
from controller.report.demo import write_demo_sweep
from controller.report.markdown import table, text
from tests.report.ci_sweeps import raw_best, write_trial
from trainer.store import FileStore

_SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


TOP_HEADER = [
    *("rank", "config", "budget", "loss", "parameters"),
    *("proposed", "queued s", "preempted", "config values"),
]


def split_row(line: str) -> list[str]:
    """A GFM table row's cells: split on pipes not escaped by a backslash (the spec's rule)."""
    assert line.startswith("|") and line.endswith("|"), line
    cells, cell, i = [], "", 1
    while i < len(line) - 1:
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) - 1:
            cell += line[i : i + 2]
            i += 2
            continue
        if ch == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
        i += 1
    if line.endswith("\\|"):  # an escaped pipe right before the closing one
        raise AssertionError(f"row ends in an escaped pipe: {line}")
    cells.append(cell.strip())
    return cells


def gfm_tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every table: (header cells, rows); asserts header, separator and rows line up."""
    lines = markdown.splitlines()
    tables = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1]):
            header = split_row(lines[i])
            assert len(split_row(lines[i + 1])) == len(header), (lines[i], lines[i + 1])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                row = split_row(lines[i])
                assert len(row) == len(header), (header, lines[i])
                rows.append(row)
                i += 1
            assert i == len(lines) or lines[i] == "", "a table ends at a blank line"
            tables.append((header, rows))
        else:
            assert not lines[i].startswith("|"), f"a table row outside a table: {lines[i]}"
            i += 1
    return tables


def rendered_tables(markdown: str) -> list[list[list[str]]]:
    """The tables as markdown-it-py (GFM tables on) renders them: each cell's plain text."""
    md = MarkdownIt("commonmark").enable("table")
    tables: list[list[list[str]]] = []
    row: list[str] | None = None  # None outside a table row
    for tok in md.parse(markdown):
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and row is not None:
            tables[-1].append(row)
            row = None
        elif tok.type == "inline" and row is not None:
            kinds = {c.type for c in tok.children or []}
            assert kinds <= {"text", "strong_open", "strong_close"}, kinds  # no stray markup
            row.append("".join(c.content for c in tok.children or [] if c.type == "text"))
    return tables


def _markdown(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main([*args, "--format", "markdown"]) == 0
    return capsys.readouterr().out


def test_summary_of_the_demo_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = write_demo_sweep(FileStore(tmp_path), sweep="md", iterations=2, seed=0, curve_points=3)
    best = raw_best(tmp_path / "md")
    html = tmp_path / "html"
    out = _markdown(capsys, d.url, "--html", str(html), "--fail-if-loss-above", "0.9")
    assert (html / "index.html").is_file()
    assert f"HTML report: `{html / 'index.html'}`" in out
    tables = gfm_tables(out)
    headers = [h for h, _ in tables]
    assert headers == [
        ["result", "gate", "what was compared"],
        ["parameter", "value"],
        ["budget (epochs)", "best loss", "config", "ok", "failed", "running"],
        ["state", "trials"],
        ["what", "value"],
        ["bracket", "configurations", "model-based", "random"],
        TOP_HEADER,
    ]
    by_header = {tuple(h): rows for h, rows in tables}
    # the demo's state: bracket 0 all random, every second config of later brackets the model's
    brackets = by_header[("bracket", "configurations", "model-based", "random")]
    assert [r[0] for r in brackets] == ["0", "1"] and brackets[0][2] == "0"
    assert all(int(r[2]) + int(r[3]) == int(r[1]) for r in brackets) and int(brackets[1][2]) > 0
    per_budget = by_header[("budget (epochs)", "best loss", "config", "ok", "failed", "running")]
    assert [float(r[0]) for r in per_budget] == sorted(best)
    assert [r[1] for r in per_budget] == [f"{best[b]:.4g}" for b in sorted(best)]
    top = by_header[tuple(TOP_HEADER)]
    # how BOHB proposed each (the controller's state says), and their queued time
    assert {r[5] for r in top} <= {"model", "random"} and {r[6] for r in top} == {"0"}
    assert [r[0] for r in top] == ["1", "2", "3", "4", "5"]
    assert top[0][3] == f"{best[81.0]:.4g}" and top[0][2] == "81"
    states = dict(by_header[("state", "trials")])
    assert int(states["ok"]) + int(states["failed"]) == d.trials == int(states["total read"])
    assert "loss **" + f"{best[81.0]:.4g}" + "** at budget 81 epochs" in out
    assert by_header[("result", "gate", "what was compared")][0][0] == "PASS"
    # what GitHub would render: the same tables, with the same cells
    assert [len(t) for t in rendered_tables(out)] == [len(rows) + 1 for _, rows in tables]


def test_without_html_the_summary_names_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = FileStore(tmp_path)
    write_trial(root, "tiny", "it0-c0-r0", 1, 0.5)
    target = tmp_path / "summary" / "step.md"
    capsys.readouterr()
    assert main([root.url("tiny"), "--format", "markdown", "--out", str(target)]) == 0
    assert capsys.readouterr().out == ""  # written to --out, nothing on stdout
    written = target.read_text()
    assert "HTML report" not in written and not list(tmp_path.glob("report-*"))
    gfm_tables(written)


def test_cells_escape_pipes_and_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trial ids that are not BOHB's key configs on the config itself: its JSON, pipes and all,
    lands in the config column; every cell must still split right and render as the text."""
    config = {"act": "a|b", "path": "c:\\d|e", "note": "*not bold* _nor this_ `code` <b>"}
    root = FileStore(tmp_path)
    write_trial(root, "esc", "t1", 9, 0.25, config=config)
    out = _markdown(capsys, root.url("esc"))
    tables = gfm_tables(out)
    rendered = rendered_tables(out)
    params = dict(rendered[0][1:])  # the incumbent's parameter table, header row dropped
    assert params == {k: str(v) for k, v in config.items()}
    top_rendered = rendered[-1][1]
    expected = "act=a|b, note=*not bold* _nor this_ `code` <b>, path=c:\\d|e"
    assert top_rendered[-1] == expected
    assert top_rendered[1].startswith('cfg-{"act": "a|b"')
    assert len(tables[-1][1][0]) == len(TOP_HEADER)


def test_table_helper_refuses_ragged_rows() -> None:
    assert table(["a", "b"], [["1", text("x|y")]]) == "| a | b |\n|---|---|\n| 1 | x\\|y |"
    with pytest.raises(ValueError, match="2 cells, the header 3"):
        table(["a", "b", "c"], [["1", "2"]])
    assert text("two\nlines") == "two lines"
