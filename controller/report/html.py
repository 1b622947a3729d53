"""The self-contained report page: PNGs embedded as data: URIs, no script, no network.

Pure: takes the Analysis, its summary, the figures and the rerun commands; returns the HTML text.
"""

from __future__ import annotations

import base64
import math
from html import escape
from typing import Any

from controller.report import fanova
from controller.report.correlation import NOT_ENOUGH
from controller.report.fanova import BudgetImportance
from controller.report.incumbent import RankedConfig, proposed
from controller.report.summary import Analysis, ReportSummary, proposals_line

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
td.na, p.na { color: #999; font-style: italic; }
img { max-width: 100%; display: block; margin: .8em 0; }
code, pre { font: 12px ui-monospace, monospace; background: #f6f6f6; }
pre { padding: .6em; overflow-x: auto; }
nav a { margin-right: 1em; } .muted { color: #777; }
"""


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}"


def _value(v: Any) -> str:
    return _num(v) if isinstance(v, float) else str(v)


def _config_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in sorted(config.items()))


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" data-file="{escape(name)}">'
    )


def _header(s: ReportSummary) -> str:
    c = s.trials
    facts = [
        ("store", f"<code>{escape(s.url)}</code>"),
        (
            "trials",
            f"{c.total} ({c.ok} ok, {c.failed} failed, {c.running} without a result yet"
            f"{f', {c.skipped} unreadable' if c.skipped else ''})",
        ),
        ("budgets", ", ".join(f"{b:g}" for b in s.budgets) + f" {escape(s.budget_unit)}"),
        ("training hours (Σ train_seconds)", _num(s.train_hours)),
        ("GPU-hours (controller)", _num(s.gpu_hours)),
        ("cost (controller)", _num(s.cost)),
    ]
    if s.proposals:
        facts.append(("model-based proposals per bracket", escape(proposals_line(s))))
    if s.stop_reason:
        facts.append(("stop reason", escape(s.stop_reason)))
    facts.append(("generated", escape(s.generated_at.isoformat(timespec="seconds"))))
    rows = "".join(f'<tr><th class="l">{k}</th><td class="l">{v}</td></tr>' for k, v in facts)
    inc = ""
    if s.incumbent:
        i = s.incumbent
        per = "".join(f"<th>{b:g}</th>" for b in i.loss_per_budget)
        vals = "".join(f"<td>{_num(v)}</td>" for v in i.loss_per_budget.values())
        inc = (
            f"<h2 id='incumbent'>Incumbent</h2><p>Config <code>{escape(i.config_id)}</code> "
            f"(trial <code>{escape(i.trial_id)}</code>): loss <b>{_num(i.loss)}</b> on budget "
            f"{i.budget:g}, {i.params if i.params is not None else 'unknown'} parameters.</p>"
            f"<table><tr><th class='l'>budget</th>{per}</tr><tr><th class='l'>loss</th>{vals}</tr>"
            f"</table><p><code>{escape(_config_text(i.config))}</code></p>"
        )
    nav = " ".join(
        f'<a href="#{k}">{v}</a>'
        for k, v in [
            ("figure1", "Figure 1"),
            ("correlation", "Rank correlation"),
            ("importance", "Parameter importance"),
            ("curves", "Learning curves"),
            ("usage", "Budget use"),
            ("top", "Top configurations"),
            ("notes", "Notes"),
        ]
    )
    return (
        f"<h1>kubohb report: sweep <code>{escape(s.sweep)}</code></h1>"
        f"<table>{rows}</table><nav>{nav}</nav>{inc}"
    )


def _correlation(a: Analysis) -> str:
    rows = []
    for p in a.correlations:
        if p.rho is None:
            cell = f'<td class="na">{escape(p.note or NOT_ENOUGH)}</td><td class="na">–</td>'
        else:
            cell = f"<td>{p.rho:.3f}</td><td>{_num(p.p_value, 2)}</td>"
        rows.append(f"<tr><td>{p.budget_a:g}</td><td>{p.budget_b:g}</td><td>{p.n}</td>{cell}</tr>")
    return (
        "<table><tr><th>budget a</th><th>budget b</th><th>configs on both</th>"
        f"<th>Spearman ρ</th><th>p-value</th></tr>{''.join(rows)}</table>"
    )


def _method(b: BudgetImportance) -> str:
    """Which method gave the numbers, and its estimated error against exact fANOVA."""
    if b.method == "exact":
        return (
            '<p class="method">Method: <b>exact</b> (every tree\'s leaf boxes; no sampling '
            "error).</p>"
        )
    worst = max((p.se for p in b.pairwise), default=0.0)
    return (
        f'<p class="method">Method: main effects and marginals <b>exact</b>; pairwise '
        f"importances <b>sampled</b> ({b.n} configs &gt; {fanova.EXACT_MAX_CONFIGS}): "
        f"{b.sampled_rows} cells per tree and pair along the finer parameter, exact along the "
        "other. Estimated error against exact fANOVA: the standard error beside each pair "
        "(std over trees / √trees: an upper bound, as that spread holds the sampling noise on "
        f"top of the trees' own), at most <b>{_se(worst)}</b> here.</p>"
    )


def _se(se: float) -> str:
    """A standard error to 4 decimals; below that, never a bare 0 (it is not exact)."""
    return f"{se:.4f}" if se >= 0.5e-4 else "&lt; 0.0001"


def _importance(b: BudgetImportance, unit: str, figures: dict[str, bytes]) -> str:
    head = f"<h3>Budget {b.budget:g} {escape(unit)} ({b.n} configs)</h3>"
    if b.note:
        return head + f'<p class="na">{escape(b.note)}</p>'
    sampled = b.method == "sampled"
    se_head = "<th>± s.e. vs exact</th>" if sampled else ""
    ind = "".join(
        f'<tr><td class="l">{escape(i.name)}</td><td>{i.fraction:.3f}</td><td>{i.std:.3f}</td>'
        f"{'<td>exact</td>' if sampled else ''}</tr>"
        for i in b.individual
    )
    pairs = "".join(
        f'<tr><td class="l">{escape(" × ".join(p.names))}</td><td>{p.fraction:.3f}</td>'
        f"<td>{p.std:.3f}</td>{f'<td>{_se(p.se)}</td>' if sampled else ''}</tr>"
        for p in b.pairwise
    )
    gap = "<th></th>" if sampled else ""
    tables = (
        '<table><tr><th class="l">parameter</th><th>importance</th><th>std over trees</th>'
        f"{se_head}</tr>{ind}"
        f'<tr><th class="l">pair (top parameters)</th><th></th><th></th>{gap}</tr>{pairs}</table>'
    )
    name = f"marginals_budget_{b.budget:g}.png"
    img = (
        _img(name, figures[name], f"marginal plots at budget {b.budget:g}")
        if name in figures
        else ""
    )
    return head + _method(b) + tables + img


def _top(ranked: list[RankedConfig], reruns: dict[str, str]) -> str:
    rows = []
    for c in ranked:
        cmd = reruns.get(c.config_id)
        rows.append(
            f"<tr><td>{c.rank}</td><td class='l'><code>{escape(c.config_id)}</code></td>"
            f"<td>{c.budget:g}</td><td>{_num(c.loss)}</td>"
            f"<td>{c.params if c.params is not None else '–'}</td>"
            f"<td>{proposed(c.model_based)}</td>"
            f"<td>{_num(c.queued_s, 0) if c.queued_s is not None else '–'}</td>"
            f"<td>{c.preemptions if c.preemptions is not None else '–'}</td>"
            f"<td class='l'><code>{escape(_config_text(c.config))}</code></td>"
            f"<td class='l'>{f'<code>{escape(cmd)}</code>' if cmd else '–'}</td></tr>"
        )
    return (
        "<table><tr><th>rank</th><th class='l'>config</th><th>budget</th><th>loss</th>"
        "<th>parameters</th><th>proposed</th><th>queued s</th><th>preempted</th>"
        "<th class='l'>config values</th><th class='l'>rerun</th></tr>"
        f"{''.join(rows)}</table>"
    )


def render_page(
    a: Analysis, s: ReportSummary, figures: dict[str, bytes], reruns: dict[str, str]
) -> str:
    """The whole page. ``reruns`` maps config id → the command that reruns it on the top budget."""
    unit = escape(a.budget_unit)

    def fig(name: str, alt: str) -> str:
        return _img(name, figures[name], alt) if name in figures else ""

    def waiting(section: str) -> str:
        why = s.waiting.get(section)
        return f"<p class='na'>Waiting for {escape(why)}.</p>" if why else ""

    importance = "".join(_importance(b, a.budget_unit, figures) for b in a.importance)
    notes = "".join(f"<li>{escape(n)}</li>" for n in a.data.notes) or "<li>none</li>"
    body = [
        _header(s),
        "<h2 id='figure1'>Figure 1: loss over time</h2>",
        "<p>Every finished trial's loss at its finishing time, coloured by budget; the line is the "
        "incumbent (bigger budgets win, then lower loss).</p>",
        waiting("figure1"),
        fig("figure1_loss_over_time.png", "Figure 1: loss over wall-clock time by budget"),
        "<h2 id='correlation'>Rank correlation across budgets</h2>",
        "<p>Spearman ρ between the losses of the configurations evaluated on both budgets; fewer "
        f"than 3 shared configurations show <i>{NOT_ENOUGH}</i>.</p>",
        waiting("correlation"),
        _correlation(a),
        fig("correlation_heatmap.png", "rank correlation heat map"),
        "<h2 id='importance'>Parameter importance (fANOVA)</h2>",
        "<p>Fraction of the variance of a random forest fitted to (config, loss) at each budget "
        "that each parameter (and each pair of the top parameters) explains, with the marginal "
        "predicted loss of the top three parameters. Computed exactly from the trees' leaf "
        f"boxes; on a budget with more than {fanova.EXACT_MAX_CONFIGS} configurations the pairwise "
        "importances are sampled instead, and that budget's table says so, with each pair's "
        "standard error against the exact value.</p>",
        waiting("importance"),
        fig("importance_by_budget.png", "parameter importance by budget"),
        importance,
        "<h2 id='curves'>Learning curves</h2>",
        waiting("curves"),
        fig("learning_curves.png", "learning curves"),
        "<h2 id='usage'>Budget use over time</h2>",
        f"<p>Trials running, and cumulative budget ({unit}) of finished trials; dashed: "
        "cumulative GPU-hours (from the controller's state.json) or, without it, the trainers' "
        "training hours.</p>",
        waiting("usage"),
        fig("usage.png", "budget use over time"),
        "<h2 id='top'>Top configurations</h2>",
        "<p>Largest budget first, then lowest loss. To rerun one on the top budget, run its "
        "command from this report's folder (the outputs go to the sweep's store under a "
        "<code>-rerun</code> sweep).</p>",
        waiting("top"),
        _top(a.ranked[: len(s.top)], reruns),
        "<h2 id='notes'>Notes</h2>",
        f"<ul class='muted'>{notes}</ul>",
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>kubohb report: {escape(s.sweep)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
