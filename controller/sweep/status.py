"""A sweep's status: brackets, launched trials, best so far, spend against each cap, an ETA,
preemptions.

``summarize`` is pure (state + clock, and where given the spec and the running trials' latest
metrics lines -> a JSON-able dict); ``render`` turns it into rich tables for ``kubohb status`` and
the live display of ``kubohb run``. Every table fits 80 columns with its headers whole (short
headers, a legend for the phases). What ``kubohb status`` reads beside the state is
``lookup.py``'s.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from controller.sweep import cost, timing
from controller.sweep.estimate import schedule
from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState, TrialRecord, utcnow
from controller.sweep.trials import continued_budget, incumbent, running_cost

PHASES = ("PENDING", "LAUNCHED", "RUNNING", "SUCCEEDED", "FAILED", "LOST", "CANCELLED")
# Column headers of the phases (the legend under the table spells them out)
SHORT = dict(zip(PHASES, ("wait", "sent", "run", "ok", "fail", "lost", "stop"), strict=True))
SHOW_PREEMPTED = 10  # trials in the text's "preempted trials" table (--json has them all)
SHOW_LAUNCHED = 20


def summarize(
    state: SweepState,
    now: datetime | None = None,
    *,
    spec: SweepSpec | None = None,
    progress: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``now``: default the wall clock for a running sweep, the last save for an ended one (a
    simulated sweep's clock is virtual). ``spec`` adds each cap's use and an ETA; ``progress``
    (trial id -> its latest metrics.jsonl line) the running trials' epoch, step, validation
    error and images/s."""
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
        rung = brackets.setdefault(t.iteration, {}).setdefault(t.budget, Counter())
        rung[t.state] += 1
        rung["model"] += t.model_based
    progress = progress or {}
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
                    {"budget": b, **{p: c[p] for p in PHASES if c[p]}, "model_based": c["model"]}
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
                **_latest(progress.get(t.trial_id)),
            }
            for t, r in zip(active, running, strict=True)
        ],
        "model_based": sum(t.model_based for t in state.trials.values()),
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
        **({} if spec is None else _against_spec(spec, state, spend, running, now)),
    }


def _latest(line: dict[str, Any] | None) -> dict[str, Any]:
    """A running trial's progress from its latest metrics line (what the trainer last uploaded:
    every few seconds and at each checkpoint)."""
    if not line:
        return {}
    return {
        "epoch": line.get("epoch"),
        "step": line.get("step"),
        "val_error": line.get("val_error"),
        "images_per_second": line.get("images_per_second"),
    }


def _against_spec(
    spec: SweepSpec,
    state: SweepState,
    spend: cost.Spend,
    running: list[cost.Running],
    now: datetime,
) -> dict[str, Any]:
    """Each set cap's use, and the ETA: the soonest of the schedule's nominal remainder at full
    parallelism (with ``max_iterations``), a cap's remainder at the devices in use when the
    cluster is full, and the sweep's deadline. None: nothing bounds the sweep."""
    stop = spec.stop
    caps: dict[str, dict[str, float]] = {}
    if stop.max_gpu_hours is not None:
        caps["max_gpu_hours"] = {"used": spend.device_s / 3600, "cap": stop.max_gpu_hours}
    if stop.max_cost is not None:
        caps["max_cost"] = {"used": spend.money, "cap": stop.max_cost}
    if stop.max_trials is not None:
        caps["max_trials"] = {"used": len(state.trials), "cap": stop.max_trials}
    devices = cost.devices(spec.trainer.resources.gpus)
    rate = spec.parallelism * devices  # device-seconds per second with every slot busy
    bounds: list[float] = []
    if stop.max_iterations is not None:
        rows, _ = schedule(spec)  # the brackets `kubohb estimate` lists, nominal
        left = sum(r.gpu_hours_nominal for r in rows) * 3600 - sum(
            _nominal_s(spec, t) * devices for t in state.trials.values() if t.done
        )
        left -= sum(r.elapsed_s * cost.devices(r.gpus) for r in running)
        bounds.append(max(0.0, left) / rate)
    if stop.max_gpu_hours is not None:
        bounds.append(max(0.0, stop.max_gpu_hours * 3600 - spend.device_s) / rate)
    deadline = stop.deadline_at(state.started_at)
    if deadline is not None:
        bounds.append(max(0.0, (deadline - now).total_seconds()))
    done = state.status != "running"
    return {
        "caps": caps,
        "eta_s": 0.0 if done else (min(bounds) if bounds else None),
        "parallelism": spec.parallelism,
    }


def _nominal_s(spec: SweepSpec, t: TrialRecord) -> float:
    return spec.train_seconds(t.budget, continued_budget(spec, t))


def render(summary: dict[str, Any]) -> Group:
    caps = summary.get("caps", {})

    def of(name: str, used: str) -> str:
        cap = caps.get(name)
        return used if cap is None else f"{used} of {cap['cap']:g}"

    total = sum(summary["trials"].values())
    hours, money = f"{summary['gpu_hours']:.4f}", f"{summary['cost']:.2f}"
    eta = summary.get("eta_s")
    head = Text.assemble(
        (f"sweep {summary['sweep']}", "bold"),
        f"  {summary['status']}",
        f" ({summary['stop_reason']})" if summary["stop_reason"] else "",
        "\n",
        f"device-hours {of('max_gpu_hours', hours)}   ",
        f"cost {of('max_cost', money)}   ",
        f"trials {of('max_trials', str(total))}   ",
        f"model-based {summary['model_based']}   ",
        f"queued hours {summary['queued_hours']:.2f}   ",
        f"preemptions {summary['preemptions']}",
        "" if eta is None else f"   eta {_duration(eta)}",
    )
    shown = [p for p in PHASES if any(r.get(p) for b in summary["brackets"] for r in b["rungs"])]
    brackets = _table("brackets (trials per budget)")
    for col in ("it", "budget", *(SHORT[p] for p in shown), "model"):
        brackets.add_column(col, justify="right")
    for bracket in summary["brackets"][-6:]:  # the latest brackets; --json has them all
        for rung in bracket["rungs"]:
            cells = [str(rung.get(p, "")) for p in shown]
            model = str(rung.get("model_based") or "")
            brackets.add_row(str(bracket["iteration"]), f"{rung['budget']:g}", *cells, model)
    legend = Text(
        "  ".join(f"{SHORT[p]}: {p.lower()}" for p in shown) + "  model: model-based",
        style="dim",
    )
    launched = summary["running"]
    preempted = any(r["preemptions"] for r in launched)
    running = _table("launched trials")
    columns = ("trial", "budget", "try", "state", "wait s", "run s", "epoch", "val err", "img/s")
    for col in (*columns, *(("pre",) if preempted else ())):
        running.add_column(col, justify="right")
    for r in launched[:SHOW_LAUNCHED]:
        running.add_row(
            r["trial_id"],
            f"{r['budget']:g}",
            str(r["attempt"]),
            r["state"],
            f"{r['queued_s']:.0f}",
            f"{r['elapsed_s']:.0f}",
            _num(r.get("epoch"), ".2f"),
            _num(r.get("val_error"), ".4f"),
            _num(r.get("images_per_second"), ".0f"),
            *((str(r["preemptions"] or ""),) if preempted else ()),
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
    parts: list[Table | Text] = [head, brackets, legend, running]
    if summary["preempted"]:
        table = _table("preempted trials (most often first)")
        for col in ("trial", "budget", "state", "preemptions"):
            table.add_column(col, justify="right")
        for p in summary["preempted"][:SHOW_PREEMPTED]:
            table.add_row(p["trial_id"], f"{p['budget']:g}", p["state"], str(p["preemptions"]))
        parts.append(table)
    return Group(*parts, best_text)


def _table(title: str) -> Table:
    # no vertical rules and one space between columns: nine columns fit 80
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1),
        show_edge=False, pad_edge=False,
    )  # fmt: skip


def _num(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def store_bytes(sizes: dict[str, int]) -> dict[str, int]:
    """A sweep's objects (key -> bytes, keys under its folder) summed by kind, and in all."""
    kinds: Counter[str] = Counter()
    for key, size in sizes.items():
        name = key.rsplit("/", 1)[-1]
        if "/journal/" in f"/{key}":
            kind = "journal"
        elif "/trials/" in f"/{key}":
            kind = name if name in KINDS else "attempt logs" if "/logs/" in key else "other"
        else:
            kind = "other" if name not in ("state.json", "spec.yaml") else name
        kinds[kind] += size
    return {**dict(sorted(kinds.items())), "total": sum(kinds.values())}


# The per-trial files whose bytes `kubohb status --store-bytes` shows apart.
KINDS = ("checkpoint.pt", "trainer.log", "metrics.jsonl", "result.json", "trial.json")
