"""A sweep's status from its state.json alone: brackets, running trials, best so far, spend,
preemptions.

``summarize`` is pure (state + clock -> JSON-able dict); ``render`` turns it into rich tables for
``kubohb status`` and the live display of ``kubohb run``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from controller.sweep import cost, timing
from controller.sweep.state import SweepState, utcnow
from controller.sweep.trials import incumbent, running_cost

PHASES = ("PENDING", "LAUNCHED", "RUNNING", "SUCCEEDED", "FAILED", "LOST", "CANCELLED")
SHOW_PREEMPTED = 10  # trials in the text's "preempted trials" table (--json has them all)


def summarize(state: SweepState, now: datetime | None = None) -> dict[str, Any]:
    """``now``: default the wall clock for a running sweep, the last save for an ended one (a
    simulated sweep's clock is virtual)."""
    now = now or (utcnow() if state.status == "running" else state.updated_at)
    active = state.in_phase("LAUNCHED", "RUNNING")
    prices = state.rung_prices
    running = [
        running_cost(t, now, prices[t.rung] if t.rung < len(prices) else None) for t in active
    ]
    caps = cost.Caps(gpu_hour_price=state.gpu_hour_price)  # only prices unpriced attempts
    spend = cost.accounted_spend(caps, state.gpu_seconds, running, spent_money=state.cost)
    device_s = spend.device_s
    brackets: dict[int, dict[float, Counter[str]]] = {}
    for t in state.trials.values():
        brackets.setdefault(t.iteration, {}).setdefault(t.budget, Counter())[t.state] += 1
    preempted = sorted(  # most often first; ties in the order BOHB handed them out
        (t for t in state.trials.values() if t.preemptions),
        key=lambda t: -t.preemptions,
    )
    return {
        "sweep": state.sweep,
        "status": state.status,
        "stop_reason": state.stop_reason,
        "started_at": state.started_at.isoformat(),
        "updated_at": state.updated_at.isoformat(),
        "budgets": state.budgets,
        "trials": dict(Counter(t.state for t in state.trials.values())),
        "brackets": [
            {
                "iteration": it,
                "rungs": [
                    {"budget": b, **{p: c[p] for p in PHASES if c[p]}}
                    for b, c in sorted(rungs.items())
                ],
            }
            for it, rungs in sorted(brackets.items())
        ],
        # launched and not ended: "queued" until the backend says it runs (queued, suspended,
        # scheduling, pulling its image); elapsed_s counts running time only, queued_s the wait
        "running": [
            {
                "trial_id": t.trial_id,
                "budget": t.budget,
                "attempt": t.attempts,
                "state": "running" if t.started_at is not None else "queued",
                "queued_s": round(timing.waited_s(t, now), 1),
                "elapsed_s": round(r.elapsed_s, 1),
                "deadline_s": t.deadline_s,
                "preemptions": t.preemptions,
            }
            for t, r in zip(active, running, strict=True)
        ],
        # running periods sent back to the queue (preempted or reclaimed pods), each resumed
        # from the trial's checkpoint: in all, and per trial that had any
        "preemptions": sum(t.preemptions for t in preempted),
        "preempted": [
            {
                "trial_id": t.trial_id,
                "budget": t.budget,
                "state": t.state,
                "preemptions": t.preemptions,
            }
            for t in preempted
        ],
        "queued_hours": (
            sum(t.queued_s for t in state.trials.values())
            + sum(timing.waited_s(t, now) for t in active)
        )
        / 3600.0,
        "incumbent": incumbent(state),
        "gpu_hours": device_s / 3600.0,
        "cost": spend.money,
    }


def render(summary: dict[str, Any]) -> Group:
    head = Text.assemble(
        (f"sweep {summary['sweep']}", "bold"),
        f"  {summary['status']}",
        f" ({summary['stop_reason']})" if summary["stop_reason"] else "",
        f"   device-hours {summary['gpu_hours']:.4f}   cost {summary['cost']:.2f}",
        f"   queued hours {summary['queued_hours']:.2f}",
        f"   preemptions {summary['preemptions']}",
    )
    brackets = Table(title="brackets (trials per budget)", title_justify="left", expand=False)
    brackets.add_column("iteration", justify="right")
    brackets.add_column("budget", justify="right")
    for phase in PHASES:
        brackets.add_column(phase.lower(), justify="right")
    for bracket in summary["brackets"][-6:]:  # the latest brackets; --json has them all
        for rung in bracket["rungs"]:
            cells = [str(rung.get(p, "")) for p in PHASES]
            brackets.add_row(str(bracket["iteration"]), f"{rung['budget']:g}", *cells)
    running = Table(title="launched trials", title_justify="left")
    columns = ("trial", "budget", "attempt", "state", "queued s", "running s", "deadline s")
    for col in (*columns, "preempted"):
        running.add_column(col, justify="right")
    for r in summary["running"][:20]:
        running.add_row(
            r["trial_id"],
            f"{r['budget']:g}",
            str(r["attempt"]),
            r["state"],
            f"{r['queued_s']:.0f}",
            f"{r['elapsed_s']:.0f}",
            f"{r['deadline_s']:g}",
            str(r["preemptions"] or ""),
        )
    best = summary["incumbent"]
    best_text = (
        Text(
            f"best so far: loss {best['loss']:.4f} at budget {best['budget']:g} "
            f"({best['trial_id']}) {best['config']}"
        )
        if best
        else Text("best so far: no result yet")
    )
    parts: list[Table | Text] = [head, brackets, running]
    if summary["preempted"]:
        preempted = Table(title="preempted trials (most often first)", title_justify="left")
        for col in ("trial", "budget", "state", "preemptions"):
            preempted.add_column(col, justify="right")
        for p in summary["preempted"][:SHOW_PREEMPTED]:
            preempted.add_row(p["trial_id"], f"{p['budget']:g}", p["state"], str(p["preemptions"]))
        parts.append(preempted)
    return Group(*parts, best_text)


def store_bytes(sizes: dict[str, int]) -> dict[str, int]:
    """A sweep's objects (key -> bytes, keys under its folder) summed by kind, and in all."""
    kinds: Counter[str] = Counter()
    for key, size in sizes.items():
        name = key.rsplit("/", 1)[-1]
        if "/journal/" in f"/{key}":
            kind = "journal"
        elif "/trials/" in f"/{key}":
            kind = name if name in KINDS else "other"
        else:
            kind = "other" if name not in ("state.json", "spec.yaml") else name
        kinds[kind] += size
    return {**dict(sorted(kinds.items())), "total": sum(kinds.values())}


# The per-trial files whose bytes `kubohb status --store-bytes` shows apart.
KINDS = ("checkpoint.pt", "trainer.log", "metrics.jsonl", "result.json", "trial.json")
