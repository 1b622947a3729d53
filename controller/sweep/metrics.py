"""Prometheus metrics of a running sweep (``kubohb run --metrics-port``): what a dashboard of a
long sweep watches, refreshed from the state after every tick of the loop.

Names follow Prometheus conventions: a ``kubohb_`` prefix, base units (seconds, not hours), no
``_total`` on gauges. The gauges are derived from ``SweepState`` and the spec, so a restarted
controller shows the same figures at once. Refreshing walks the trial table once per tick: a few
milliseconds at 50,000 trials, paid only when metrics are on.

The request figures are this process's own (they start at 0 after a restart): ``wrap`` puts a
timing proxy in front of the store, the backend and the optimiser, so every store request,
backend call (launch, poll, cancel, adopt) and ask/tell/snapshot is a histogram sample
(``kubohb_request_seconds``) and every one that raised is counted (``kubohb_request_errors``),
by part and operation; a store's answers that are not failures (NotFound, AlreadyExists,
TooLarge) are not errors. A store request that the S3 store's retries carried through an outage is
one slow sample; one that raised after them is an error.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from controller.bohb import trial_id_of
from controller.sweep import cost, timing
from controller.sweep.spec import SweepSpec
from controller.sweep.state import SweepState
from controller.sweep.trials import running_cost
from trainer.store import AlreadyExists, NotFound, TooLarge

T = TypeVar("T")
# The calls timed per part; anything else (properties, attributes) passes through untimed.
STORE_OPS = (
    "get", "get_limited", "put", "put_new", "put_file", "get_file", "exists", "list",
    "list_after", "list_sizes", "get_json", "put_json", "delete",
)  # fmt: skip
TIMED: dict[str, frozenset[str]] = {
    "store": frozenset(STORE_OPS),
    "backend": frozenset({"launch", "poll", "cancel", "adopt"}),
    "bohb": frozenset({"ask", "tell", "state_dict", "wind_down"}),
}
# Raised as answers, not failures: a missing result, a lost race for a journal entry, a big file.
ANSWERS: dict[str, tuple[type[Exception], ...]] = {"store": (NotFound, AlreadyExists, TooLarge)}
# From a local store's sub-millisecond reads to an API server or S3 endpoint under load.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        self.promotions = Gauge(
            "kubohb_promotions",
            "Trials that are a promotion (a config at a rung above its bracket's first), by "
            "whether they continue the rung below's checkpoint (bohb.promotion_resume)",
            [*sweep, "kind"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "kubohb_request_seconds", "Duration of this controller's calls to the store, the "
            "backend and the optimiser", [*sweep, "part", "op"], buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.request_errors = PromCounter(
            "kubohb_request_errors", "Calls to the store, the backend and the optimiser that "
            "raised", [*sweep, "part", "op"], registry=r,
        )  # fmt: skip
        self.prices = spec.rung_prices()
        self.caps = cost.Caps(spec.stop.max_gpu_hours, spec.stop.max_cost, spec.stop.gpu_hour_price)

    def wrap(self, part: str, target: T) -> T:
        """``target`` behind a proxy that times its ``TIMED[part]`` calls."""
        seconds = self.request_seconds
        errors = self.request_errors
        name = self.spec.name

        def metric(op: str) -> tuple[Any, Any]:
            return seconds.labels(name, part, op), errors.labels(name, part, op)

        return cast(T, _Timed(target, TIMED[part], metric, ANSWERS.get(part, ())))

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
        continued = promoted = 0
        for t in state.trials.values():
            if t.continues is not None:
                continued += 1
            elif t.rung > 0 and trial_id_of(str(t.config_id), t.rung - 1) in state.trials:
                promoted += 1
        self.promotions.labels(name, "continued").set(continued)
        self.promotions.labels(name, "from_scratch").set(promoted)
        self.journal_entries.labels(name).set(state.seq)
        self.updated.labels(name).set(now.timestamp())


class _Timed:
    """Forwards every attribute to its target; the named calls are timed, and counted when they
    raise. Attribute writes go to the target too (the loop sets ``bohb.max_iterations``)."""

    def __init__(
        self,
        target: Any,
        ops: frozenset[str],
        metric: Callable[[str], tuple[Any, Any]],
        answers: tuple[type[Exception], ...],
    ) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_ops", ops)
        object.__setattr__(self, "_metric", metric)
        object.__setattr__(self, "_answers", answers)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name not in self._ops or not callable(value):
            return value
        seconds, errors = self._metric(name)
        answers = self._answers

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return value(*args, **kwargs)
            except Exception as exc:
                if not isinstance(exc, answers):
                    errors.inc()
                raise
            finally:
                seconds.observe(time.perf_counter() - t0)

        return timed

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)
