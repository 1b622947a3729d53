"""The ``kubohb`` command: run, validate, estimate, status, logs, submit (and report, when
installed).

Exit codes: 0 the sweep finished (BOHB ran out of work or max_iterations), 2 bad input (invalid
sweep file, a store holding a different sweep of the same name), 3 stopped by a cap (max_trials,
max_gpu_hours, max_cost, deadline), 1 any other error (store unreachable, backend failure),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from controller import log

if TYPE_CHECKING:  # the CLI imports what a command needs only when it runs
    from collections.abc import Callable

    from controller.sweep.spec import SweepSpec
    from controller.sweep.state import SweepState
    from trainer.store import Store

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_CAPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _print_spec_errors(exc: Exception) -> None:
    from controller.sweep.spec import SpecError

    if isinstance(exc, SpecError):
        print(exc.report(), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def _load(file: str) -> SweepSpec | None:
    """The sweep file's spec, or None after printing every error."""
    from controller.sweep.spec import SpecError, load_sweep

    try:
        return load_sweep(file)
    except SpecError as exc:
        _print_spec_errors(exc)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.sweep.estimate import estimate

    spec = _load(args.file)
    if spec is None:
        return EXIT_BAD_INPUT
    where = f"backend {spec.backend.type}, store {spec.store.url}"
    print(f"{args.file}: ok (sweep {spec.name!r}, {where})")

    # the schedule only: validating stays instant (`kubohb estimate` also simulates the sweep)
    e = estimate(spec, run_simulation=False)
    print(f"estimate: {e.summary()}")
    for warning in e.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace) -> int:
    from controller.sweep.estimate import estimate, table

    spec = _load(args.file)
    if spec is None:
        return EXIT_BAD_INPUT
    e = estimate(spec)
    if args.json:
        print(e.model_dump_json(indent=1))
        return EXIT_OK
    print(f"{spec.name}: {e.summary()}")
    print(table(e))
    if e.simulated is not None:
        s = e.simulated
        first = s.first_max_budget_result_s
        when = f"{first / 3600:,.1f} h" if first is not None else "never"
        print(
            f"simulated at parallelism {spec.parallelism}: {s.trials} trials, "
            f"{s.gpu_hours:,.1f} device-hours, {s.wall_clock_s / 3600:,.1f} h, first result on "
            f"the largest budget after {when}, stopped by {s.stop_reason}"
        )
    for warning in e.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from controller.sweep.runner import (
        BackendSetupError,
        ResumeConflictError,
        one_blas_thread,
        run_sweep,
    )
    from controller.sweep.spec import SpecError, read_sweep
    from controller.sweep.state import EXIT_GOAL_NOT_MET
    from controller.sweep.status import render, summarize
    from controller.sweep.warmstart import WarmStartError
    from trainer.store import StoreError

    log.setup()
    one_blas_thread()
    try:
        spec, text = read_sweep(args.file)  # one read: the text stored as spec.yaml is the spec run
        if args.smoke:
            from controller.sweep.smoke import smoke

            spec, text = smoke(spec)
    except SpecError as exc:
        _print_spec_errors(exc)
        return EXIT_BAD_INPUT
    live = sys.stdout.isatty() and not args.no_progress and not args.json
    cancel = args.cancel_running
    ticks: list[Callable[[SweepState], None]] = []
    wrap = None
    if args.metrics_port is not None:
        from controller.sweep.metrics import SweepMetrics

        metrics = SweepMetrics(spec)
        port = metrics.serve(args.metrics_port, args.metrics_addr)
        log.event("metrics.serving", addr=args.metrics_addr, port=port)
        ticks.append(metrics.update)
        wrap = metrics.wrap

    def on_tick(state: SweepState) -> None:
        for tick in ticks:
            tick(state)

    try:
        if live:
            from controller.sweep.progress import LiveProgress

            with LiveProgress(spec=spec) as progress:
                ticks.append(progress)
                outcome = run_sweep(
                    spec, text, on_tick=on_tick, cancel_on_interrupt=cancel, wrap=wrap
                )
        else:
            outcome = run_sweep(spec, text, on_tick=on_tick, cancel_on_interrupt=cancel, wrap=wrap)
    except KeyboardInterrupt:
        if cancel:
            what = "running trials were cancelled (relaunched from their checkpoints)"
        else:
            what = "running trials go on (the next run adopts them; --cancel-running stops them)"
        print(f"interrupted: {what}; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ResumeConflictError, BackendSetupError, WarmStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as exc:
        log.event("sweep.error", logging.ERROR, error=str(exc))
        print(f"error: store: {exc}; run the same command again to resume", file=sys.stderr)
        return EXIT_ERROR
    except RuntimeError as exc:  # e.g. the Kubernetes backend: the message names the object
        log.event("sweep.error", logging.ERROR, error=str(exc))
        print(f"error: {exc}; run the same command again to resume", file=sys.stderr)
        return EXIT_ERROR
    summary = summarize(outcome.state)
    goal = spec.stop.goal
    if goal is not None:
        summary["goal"] = {"loss_below": goal.loss_below, "met": outcome.reason == "goal"}
    if args.termination_log:
        _write_termination_log(args.termination_log, outcome.reason, outcome.exit_code, summary)
    if args.json:
        print(json.dumps({**summary, "exit_code": outcome.exit_code}, indent=1, default=str))
    else:
        console = Console()
        if not live:  # the live display already left the final table on the screen
            console.print(render(summary))
        best = summary["incumbent"]
        console.print(f"sweep {spec.name} ended: {outcome.reason}")
        if best:
            console.print(f"incumbent: {json.dumps(best, default=str)}")
        if goal is not None and outcome.reason != "goal":
            console.print(
                f"goal not met: no loss below {goal.loss_below:g} on the largest budget "
                f"({spec.budget.max:g} {spec.budget.unit})"
            )
    if args.stopped_is_success and outcome.exit_code in (EXIT_CAPPED, EXIT_GOAL_NOT_MET):
        return EXIT_OK  # the sweep ended as its spec says; its reason is in the store and log
    return outcome.exit_code


def _write_termination_log(path: str, reason: str, code: int, summary: dict) -> None:
    """One JSON line a cluster shows for the ended pod (Kubernetes reads /dev/termination-log,
    at most 4,096 bytes): why the sweep ended, its own exit code and its incumbent."""
    best = summary.get("incumbent") or {}
    line = {
        "stop_reason": reason,
        "exit_code": code,
        "incumbent_loss": best.get("loss"),
        "incumbent_budget": best.get("budget"),
        "goal_met": (summary.get("goal") or {}).get("met"),
    }
    try:
        Path(path).write_text(json.dumps(line) + "\n")  # a few dozen bytes: within the 4,096
    except OSError as exc:  # the sweep's outcome stands: the log is a courtesy to the cluster
        print(f"warning: --termination-log {path}: {exc.strerror or exc}", file=sys.stderr)


def _watch(store: Store, sweep: str, spec: SweepSpec | None, every_s: float) -> int:
    """``kubohb status --watch``: redraw every ``every_s`` seconds until the sweep ends (or
    Ctrl-C); a store hiccup keeps the last view."""
    from rich.live import Live

    from controller.sweep.journal import load_state
    from controller.sweep.lookup import read_progress
    from controller.sweep.status import render, summarize
    from trainer.store import StoreError

    with Live(refresh_per_second=1, screen=False) as live:
        while True:
            try:
                state = load_state(store, sweep)
            except StoreError:
                state = None
            if state is not None:
                progress = read_progress(store, state)
                live.update(render(summarize(state, spec=spec, progress=progress)))
                if state.status != "running":
                    return EXIT_OK
            try:
                time.sleep(every_s)
            except KeyboardInterrupt:
                return EXIT_OK


def _open_sweep(args: argparse.Namespace) -> tuple[Store, str, SweepState] | int:
    """The store, name and state of ``args.sweep_url`` (<root>/<sweep>), or the exit code after
    printing why not."""
    from controller.sweep.journal import load_state
    from trainer.store import StoreError, open_store

    root, _, sweep = args.sweep_url.rstrip("/").rpartition("/")
    if not sweep or not root:
        print(f"error: {args.sweep_url}: give the sweep's folder, <root>/<sweep>", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        store = open_store(
            root,
            endpoint_url=args.endpoint_url or os.environ.get("KUBOHB_STORE_ENDPOINT"),
            region=args.region or os.environ.get("KUBOHB_STORE_REGION"),
        )
        state = load_state(store, sweep)
    except (StoreError, ValueError) as exc:
        print(f"error: {args.sweep_url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if state is None:
        print(
            f"error: {args.sweep_url}: no state.json (not a sweep, or not started)", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    return store, sweep, state


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a trial's log: a failed attempt's output as the loop kept it (the newest, or
    ``--attempt N``), else the trainer's own trainer.log."""
    from controller.sweep.logs import attempt_log_key, saved_attempts, trainer_log_key
    from trainer.store import NotFound, StoreError

    opened = _open_sweep(args)
    if isinstance(opened, int):
        return opened
    store, sweep, state = opened
    trial = args.trial
    if trial not in state.trials:
        known = ", ".join(list(state.trials)[:5]) + (", ..." if len(state.trials) > 5 else "")
        print(f"error: {args.sweep_url}: no trial {trial!r} (trials: {known})", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        attempts = saved_attempts(store, sweep, trial)
        if args.attempt is not None and args.attempt not in attempts:
            have = ", ".join(map(str, attempts)) or "none"
            print(
                f"error: trial {trial}: no log kept for attempt {args.attempt} (logs are kept for "
                f"failed attempts; kept: {have}; the trial has had "
                f"{state.trials[trial].attempts} attempt(s))",
                file=sys.stderr,
            )
            return EXIT_ERROR
        attempt: int | None = args.attempt
        if attempt is None and attempts:
            attempt = attempts[-1]
        key = (
            trainer_log_key(sweep, trial)
            if attempt is None
            else attempt_log_key(sweep, trial, attempt)
        )
        data = store.get(key)
    except NotFound:
        print(f"error: trial {trial}: no log in the store yet ({store.url(key)})", file=sys.stderr)
        return EXIT_ERROR
    except StoreError as exc:
        print(f"error: {args.sweep_url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    which = "trainer.log" if attempt is None else f"attempt {attempt} (kept: {attempts})"
    print(f"# {store.url(key)}: {which}", file=sys.stderr)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from controller.sweep.lookup import read_progress, read_spec
    from controller.sweep.status import render, store_bytes, summarize
    from trainer.store import StoreError

    opened = _open_sweep(args)
    if isinstance(opened, int):
        return opened
    store, sweep, state = opened
    spec = read_spec(store, sweep)
    summary = summarize(state, spec=spec, progress=read_progress(store, state))
    if args.watch is not None and not args.json:
        return _watch(store, sweep, spec, args.watch)
    if args.store_bytes:  # one listing of the sweep's folder: 1 request per 1,000 objects on S3
        try:
            summary["store_bytes"] = store_bytes(store.list_sizes(sweep))
        except StoreError as exc:
            print(f"error: {args.sweep_url}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        Console().print(render(summary))
        if "store_bytes" in summary:
            parts = ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in summary["store_bytes"].items())
            Console().print(f"store: {parts}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubohb",
        description="BOHB architecture + hyperparameter sweeps, locally or on Kubernetes.",
        epilog="exit codes: 0 finished (or stop.goal met), 1 other error, 2 bad input, "
        "3 stopped by a cap, 4 stop.goal not met, 130 interrupted",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a sweep")
    run.add_argument("file", metavar="SWEEP.yaml")
    run.add_argument("--json", action="store_true", help="print the final summary as JSON")
    run.add_argument("--no-progress", action="store_true", help="no live display")
    run.add_argument(
        "--cancel-running",
        action="store_true",
        help="on Ctrl-C, cancel the running trials (they resume from their checkpoints when the "
        "sweep is run again); by default they keep running and the next run adopts them",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics of the sweep on PORT (/metrics; 0: any free port)",
    )
    run.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="the address the metrics listen on (default 127.0.0.1; 0.0.0.0 in a pod)",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="run the same sweep shrunk to two tiny trials under <name>-smoke: proves the "
        "trainer image, store, credentials and backend end to end in a minute or two",
    )
    run.add_argument(
        "--stopped-is-success",
        action="store_true",
        help="exit 0, not 3 or 4, when a cap stopped the sweep or its goal was not met (a "
        "cluster then shows the Job Complete; the reason is in the store and --termination-log)",
    )
    run.add_argument(
        "--termination-log",
        metavar="PATH",
        help="write why the sweep ended (stop reason, its own exit code, incumbent) as one JSON "
        "line to PATH, e.g. /dev/termination-log on Kubernetes",
    )
    run.set_defaults(func=cmd_run)
    validate = sub.add_parser("validate", help="check a sweep file; print every error")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=cmd_validate)
    estimate = sub.add_parser(
        "estimate", help="what a sweep will cost and take: its schedule, priced, and simulated"
    )
    estimate.add_argument("file", metavar="SWEEP.yaml")
    estimate.add_argument("--json", action="store_true")
    estimate.set_defaults(func=cmd_estimate)
    status = sub.add_parser("status", help="show a sweep's progress from its store")
    status.add_argument("sweep_url", metavar="SWEEP_URL", help="<store root>/<sweep>")
    status.add_argument("--json", action="store_true")
    status.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint URL")
    status.add_argument("--region", default=None)
    status.add_argument(
        "--store-bytes",
        action="store_true",
        help="also list the sweep's folder and show its bytes by kind (checkpoints, logs...)",
    )
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="redraw every SECONDS (default 5) until the sweep ends or Ctrl-C",
    )
    status.set_defaults(func=cmd_status)
    logs = sub.add_parser(
        "logs",
        help="print a trial's log from the store: a failed attempt's output (kept by the "
        "controller before its pod or process is gone), else the trainer's trainer.log",
    )
    logs.add_argument("sweep_url", metavar="SWEEP_URL", help="<store root>/<sweep>")
    logs.add_argument("trial", metavar="TRIAL", help="the trial id (kubohb status shows them)")
    logs.add_argument(
        "--attempt", type=int, default=None, metavar="N", help="that attempt's kept log"
    )
    logs.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint URL")
    logs.add_argument("--region", default=None)
    logs.set_defaults(func=cmd_logs)
    from controller.submit.arguments import register as register_submit

    register_submit(sub)
    if importlib.util.find_spec("controller.report.command") is not None:
        from controller.report.command import register

        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
