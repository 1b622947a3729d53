"""Prometheus metrics of a running sweep (``kubohb run --metrics-port``): what a dashboard of a
long sweep watches, refreshed from the state after every tick of the loop.

Names follow Prometheus conventions: a ``kubohb_`` prefix, base units (seconds, not hours), no
``_total`` on gauges. Everything is derived from ``SweepState`` and the spec, so a restarted
controller shows the same figures at once. Refreshing walks the trial table once per tick: a few
milliseconds at 50,000 trials, paid only when metrics are on.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from controller.sweep import cost, timing
from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState
from controller.sweep.trials import running_cost


class SweepMetrics:
    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.registry = CollectorRegistry()
        r, sweep = self.registry, ["sweep"]
        self.trials = Gauge(
            "kubohb_trials", "Trials by state and rung (budget index)", [*sweep, "state", "rung"],
            registry=r,
        )  # fmt: skip
        self.suggestions = Gauge(
            "kubohb_suggestions", "Trials BOHB handed out, by how (model or random)",
            [*sweep, "kind"], registry=r,
        )  # fmt: skip
        self.incumbent_loss = Gauge(
            "kubohb_incumbent_loss", "Best loss on the largest budget with a result", sweep,
            registry=r,
        )  # fmt: skip
        self.incumbent_budget = Gauge(
            "kubohb_incumbent_budget", "The incumbent's budget (epochs or seconds)", sweep,
            registry=r,
        )  # fmt: skip
        self.device_seconds = Gauge(
            "kubohb_device_seconds", "Device-seconds accounted (finished and running attempts)",
            sweep, registry=r,
        )  # fmt: skip
        self.cost = Gauge("kubohb_cost", "Money accounted", sweep, registry=r)
        self.cap = Gauge(
            "kubohb_cap", "Each set cap in its unit (max_gpu_hours as device-seconds)",
            [*sweep, "cap"], registry=r,
        )  # fmt: skip
        self.attempts = Gauge(
            "kubohb_attempts", "Launched attempts not ended, by phase (queued or running)",
            [*sweep, "phase"], registry=r,
        )  # fmt: skip
        self.oldest_queued = Gauge(
            "kubohb_oldest_queued_seconds", "How long the longest-waiting queued attempt waited",
            sweep, registry=r,
        )  # fmt: skip
        self.preemptions = Gauge(
            "kubohb_preemptions", "Running attempts sent back to the queue, over all trials",
            sweep, registry=r,
        )  # fmt: skip
        self.journal_entries = Gauge(
            "kubohb_journal_entries", "Journal position of the state (entries written)", sweep,
            registry=r,
        )  # fmt: skip
        self.updated = Gauge(
            "kubohb_updated_timestamp_seconds", "When the state was last refreshed (Unix time)",
            sweep, registry=r,
        )  # fmt: skip
        self.prices = spec.rung_prices()
        self.caps = cost.Caps(spec.stop.max_gpu_hours, spec.stop.max_cost, spec.stop.gpu_hour_price)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve /metrics in a daemon thread; the port it listens on (0: one the OS picked)."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_address[1])

    def update(self, state: SweepState, now: datetime | None = None) -> None:
        """Refresh from the state; ``now`` default the state's last save (the loop's clock,
        which is virtual for a simulated sweep)."""
        now = now or state.updated_at
        name = state.sweep
        by: Counter[tuple[str, int]] = Counter()
        kinds: Counter[str] = Counter()
        for t in state.trials.values():
            by[(t.state, t.rung)] += 1
            kinds["model" if t.model_based else "random"] += 1
        self.trials.clear()
        for (phase, rung), n in by.items():
            self.trials.labels(name, phase, str(rung)).set(n)
        for kind in ("model", "random"):
            self.suggestions.labels(name, kind).set(kinds[kind])
        best = state.incumbent
        self.incumbent_loss.labels(name).set(best["loss"] if best else math.nan)
        self.incumbent_budget.labels(name).set(best["budget"] if best else math.nan)
        active = state.in_phase("LAUNCHED", "RUNNING")
        running = [
            running_cost(t, now, self.prices[t.rung] if t.rung < len(self.prices) else None)
            for t in active
        ]
        spend = cost.accounted_spend(self.caps, state.gpu_seconds, running, state.cost)
        self.device_seconds.labels(name).set(spend.device_s)
        self.cost.labels(name).set(spend.money)
        if self.spec.stop.max_gpu_hours is not None:
            self.cap.labels(name, "max_gpu_hours").set(self.spec.stop.max_gpu_hours * 3600)
        if self.spec.stop.max_cost is not None:
            self.cap.labels(name, "max_cost").set(self.spec.stop.max_cost)
        queued = [t for t in active if t.started_at is None]
        self.attempts.labels(name, "queued").set(len(queued))
        self.attempts.labels(name, "running").set(len(active) - len(queued))
        waits = [timing.waited_s(t, now) for t in queued]
        self.oldest_queued.labels(name).set(max(waits, default=0.0))
        self.preemptions.labels(name).set(sum(t.preemptions for t in state.trials.values()))
        self.journal_entries.labels(name).set(state.seq)
        self.updated.labels(name).set(now.timestamp())
