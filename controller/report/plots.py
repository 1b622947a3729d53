"""The report's figures as PNG bytes (matplotlib's object API on Agg: no pyplot, no display).

Every function takes the Analysis and returns ``{file name: PNG bytes}`` so the page can both
embed them and write them beside itself.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from controller.report.correlation import BudgetPair
from controller.report.fanova import BudgetImportance, Marginal
from controller.report.incumbent import elapsed, finished_ok, sweep_start
from controller.report.load import TrialRow
from controller.report.parallel import parallel_map
from controller.report.summary import Analysis

DPI = 100
MAX_CURVES = 400  # learning curves drawn; more only blur the plot and slow the page


def _png(fig: Figure, **margins: float) -> bytes:
    """Render with fixed margins: bbox_inches="tight" or a layout engine would draw twice."""
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**({"left": 0.09, "right": 0.97, "bottom": 0.12, "top": 0.9} | margins))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _budget_colours(budgets: Sequence[float]) -> tuple[ListedColormap, BoundaryNorm]:
    """One discrete colour per budget (viridis), ordered small → large."""
    from matplotlib import colormaps

    n = max(len(budgets), 1)
    cmap = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, n)))
    return cmap, BoundaryNorm(np.arange(n + 1) - 0.5, n)


def _fmt(b: float) -> str:
    return f"{b:g}"


def _time_unit(top_seconds: float) -> tuple[float, str]:
    """Divisor and axis label for times up to top_seconds."""
    unit, div = ("hours", 3600.0) if top_seconds >= 7200 else ("minutes", 60.0)
    if top_seconds < 120:
        unit, div = "seconds", 1.0
    return div, f"wall-clock time since the sweep started [{unit}]"


def figure1(a: Analysis) -> dict[str, bytes]:
    """Every evaluated config's loss against wall-clock time, by budget; the incumbent as a line."""
    fig = Figure(figsize=(9, 5))
    ax = fig.add_subplot()
    done = finished_ok(a.data.trials)
    start = sweep_start(a.data.trials)
    budgets = a.budgets
    cmap, norm = _budget_colours(budgets)
    if done and start is not None:
        t = np.array([elapsed(r.finished_at, start) for r in done if r.finished_at])
        div, label = _time_unit(float(t.max()))
        x = t / div
        y = np.array([r.loss for r in done], dtype=float)
        idx = np.array([budgets.index(r.budget) for r in done])
        sc = ax.scatter(x, y, c=idx, cmap=cmap, norm=norm, s=14, alpha=0.75, linewidths=0, zorder=3)
        cbar = fig.colorbar(sc, ax=ax, ticks=range(len(budgets)))
        cbar.ax.set_yticklabels([_fmt(b) for b in budgets])
        cbar.set_label(f"budget [{a.budget_unit}]")
        if a.trajectory:
            tx = [p.time_s / div for p in a.trajectory] + [float(x.max())]
            ty = [p.loss for p in a.trajectory] + [a.trajectory[-1].loss]
            ax.step(tx, ty, where="post", color="crimson", lw=2, label="incumbent", zorder=2)
            ax.legend(loc="upper right")
        ax.set_xlabel(label)
        if y.min() > 0 and y.max() / y.min() > 20:
            ax.set_yscale("log")
    else:
        ax.text(
            0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_ylabel("loss (validation error)")
    ax.set_title("Loss of every evaluated configuration over time")
    ax.grid(alpha=0.3)
    return {"figure1_loss_over_time.png": _png(fig)}


def correlation_heatmap(a: Analysis) -> dict[str, bytes]:
    budgets = a.budgets
    n = len(budgets)
    fig = Figure(figsize=(1.3 * n + 2.5, 1.1 * n + 1.5))
    ax = fig.add_subplot()
    grid = np.full((n, n), np.nan)
    pairs: dict[tuple[int, int], BudgetPair] = {}
    for p in a.correlations:
        i, j = budgets.index(p.budget_b), budgets.index(p.budget_a)
        pairs[(i, j)] = p
        if p.rho is not None:
            grid[i, j] = p.rho
    ax.set_facecolor("#eeeeee")  # pairs without a number (and the upper triangle) stay grey
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-1, vmax=1)
    for (i, j), p in pairs.items():
        text = f"{p.rho:.2f}\nn={p.n}" if p.rho is not None else f"not enough\ndata (n={p.n})"
        if p.rho is None and p.n >= 3:
            text = f"undefined\nn={p.n}"
        dark = p.rho is not None and abs(p.rho) > 0.6
        ax.text(
            j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black"
        )
    ax.set_xticks(range(n), [_fmt(b) for b in budgets])
    ax.set_yticks(range(n), [_fmt(b) for b in budgets])
    ax.set_xlabel(f"budget [{a.budget_unit}]")
    ax.set_ylabel(f"budget [{a.budget_unit}]")
    ax.set_title("Spearman rank correlation across budgets")
    fig.colorbar(im, ax=ax, label="Spearman ρ")
    return {"correlation_heatmap.png": _png(fig)}


def importance_heatmap(a: Analysis) -> dict[str, bytes]:
    """Individual importance of every parameter (rows) at every budget (columns), in one view:
    how what matters changes with the budget is the paper's point."""
    done = [b for b in a.importance if b.note is None]
    if not done:
        return {}
    top = {i.name: i.fraction for i in done[-1].individual}  # order rows by the top budget
    names = sorted({i.name for b in done for i in b.individual}, key=lambda n: -top.get(n, 0.0))
    grid = np.full((len(names), len(a.importance)), np.nan)
    for j, b in enumerate(a.importance):
        for i in b.individual:
            grid[names.index(i.name), j] = i.fraction
    fig = Figure(figsize=(1.1 * len(a.importance) + 3.5, 0.42 * len(names) + 1.6))
    ax = fig.add_subplot()
    ax.set_facecolor("#eeeeee")  # budgets with too few configs
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(grid):
        if math.isfinite(v):
            ax.text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > 0.6 else "black",
            )
    ax.set_xticks(range(len(a.importance)), [f"{_fmt(b.budget)}\n(n={b.n})" for b in a.importance])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"budget [{a.budget_unit}]")
    ax.set_title("fANOVA importance (fraction of variance) by budget")
    fig.colorbar(im, ax=ax)
    return {"importance_by_budget.png": _png(fig, left=0.25, bottom=0.2, top=0.88)}


def marginal_plots(b: BudgetImportance, unit: str) -> bytes:
    ms = b.marginals
    fig = Figure(figsize=(4 * max(len(ms), 1), 3.4))
    axes = fig.subplots(1, max(len(ms), 1), squeeze=False)[0]
    for ax, m in zip(axes, ms, strict=False):
        _marginal(ax, m)
    fig.suptitle(f"Marginal predicted loss of the top parameters at budget {_fmt(b.budget)} {unit}")
    return _png(fig, left=0.07, wspace=0.35, top=0.85, bottom=0.2)


def _marginal(ax: Axes, m: Marginal) -> None:
    mean, std = np.array(m.mean), np.array(m.std)
    if m.kind == "categorical":
        ax.bar(range(len(m.labels)), mean, yerr=std, color="seagreen", capsize=3)
        ax.set_xticks(range(len(m.labels)), m.labels, rotation=30, ha="right")
    else:
        x = np.array(m.x)
        ax.plot(x, mean, color="seagreen")
        ax.fill_between(x, mean - std, mean + std, color="seagreen", alpha=0.25)
        if m.log:
            ax.set_xscale("log")
    ax.set_xlabel(m.name)
    ax.set_ylabel("predicted loss")
    ax.grid(alpha=0.3)


def marginal_figure(b: BudgetImportance, unit: str) -> dict[str, bytes]:
    return {f"marginals_budget_{_fmt(b.budget)}.png": marginal_plots(b, unit)}


def learning_curves(a: Analysis) -> dict[str, bytes]:
    """Validation error against epoch from metrics.jsonl; the incumbent's config highlighted."""
    best = a.ranked[0].config_id if a.ranked else None
    rows = [t for t in a.data.trials if sum(p.val_error is not None for p in t.curve) >= 2]
    rows.sort(key=lambda t: (t.budget, t.trial_id))
    if len(rows) > MAX_CURVES:  # an evenly spaced sample over budgets, plus the incumbent's curves
        stride = math.ceil(len(rows) / MAX_CURVES)
        rows = [t for i, t in enumerate(rows) if i % stride == 0 or t.config_id == best]
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    budgets = a.budgets
    cmap, norm = _budget_colours(budgets)
    # x: epochs, or training seconds when the budget is in seconds
    in_seconds = a.budget_unit == "seconds"

    def points(t: TrialRow) -> np.ndarray:
        return np.array(
            [
                (p.seconds if in_seconds else p.epoch, p.val_error)
                for p in t.curve
                if p.val_error is not None
            ]
        )

    segments = [points(t) for t in rows]
    if segments:
        lc = LineCollection(segments, cmap=cmap, norm=norm, linewidths=0.8, alpha=0.5)
        lc.set_array(np.array([budgets.index(t.budget) for t in rows]))
        ax.add_collection(lc)
        ax.autoscale()
        cbar = fig.colorbar(lc, ax=ax, ticks=range(len(budgets)))
        cbar.ax.set_yticklabels([_fmt(b) for b in budgets])
        cbar.set_label(f"budget [{a.budget_unit}]")
        label: str | None = f"incumbent {best}"
        for t in rows:
            if t.config_id == best:  # its curve on every budget it ran on
                pts = points(t)
                ax.plot(pts[:, 0], pts[:, 1], color="crimson", lw=2, label=label)
                label = None  # in the legend once
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
        first = min(float(s[:, 0].min()) for s in segments)
        if first > 0 and max(float(s[:, 0].max()) for s in segments) / first > 30:
            ax.set_xscale("log")
    else:
        ax.text(
            0.5,
            0.5,
            "no metrics.jsonl with two or more points yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_xlabel("training seconds" if in_seconds else "epoch")
    ax.set_ylabel("validation error")
    ax.set_title(f"Learning curves ({len(rows)} trials)")
    ax.grid(alpha=0.3)
    return {"learning_curves.png": _png(fig)}


def usage(a: Analysis) -> dict[str, bytes]:
    fig = Figure(figsize=(9, 5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    if a.usage:
        div, label = _time_unit(max(u.time_s for u in a.usage))
        t = np.array([u.time_s for u in a.usage]) / div
        top.step(t, [u.running for u in a.usage], where="post", color="slateblue")
        bottom.step(t, [u.budget_used for u in a.usage], where="post", color="teal")
        bottom.set_xlabel(label)
        # GPU-hours where the controller recorded them, else the trainers' own training time
        gpu = any(u.gpu_hours for u in a.usage)
        if gpu or any(u.train_hours for u in a.usage):
            twin = bottom.twinx()
            hours = [u.gpu_hours if gpu else u.train_hours for u in a.usage]
            twin.step(t, hours, where="post", color="grey", ls="--")
            twin.set_ylabel(f"{'GPU' if gpu else 'training'} hours (dashed)")
    top.set_ylabel("trials running")
    bottom.set_ylabel(f"budget used [{a.budget_unit}]")
    top.set_title("Budget and compute use over time")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return {"usage.png": _png(fig, right=0.9)}  # room for the twin axis' label


def _run(task: tuple[Callable[..., dict[str, bytes]], tuple[Any, ...]]) -> dict[str, bytes]:
    make, args = task
    return make(*args)


def all_figures(a: Analysis, workers: int | None = None) -> dict[str, bytes]:
    """Every figure, in page order; drawn by up to ``workers`` forked processes (default: 2)."""
    tasks: list[tuple[Callable[..., dict[str, bytes]], tuple[Any, ...]]] = [
        (figure1, (a,)),
        (correlation_heatmap, (a,)),
        (importance_heatmap, (a,)),
        *[(marginal_figure, (b, a.budget_unit)) for b in a.importance if b.note is None],
        (learning_curves, (a,)),
        (usage, (a,)),
    ]
    results = parallel_map(_run, tasks, workers)
    return {name: png for r in results for name, png in r.items()}
