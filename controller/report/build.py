"""Load → analyse → write: the report's only module that touches the file system for output."""

from __future__ import annotations

import gc
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from controller.log import event
from controller.report.budgets import budget_stats, unit_of
from controller.report.gates import GateResult, baseline_gate, loss_gate
from controller.report.html import render_page
from controller.report.incumbent import RankedConfig
from controller.report.junit import render_junit
from controller.report.load import SweepData, load_sweep
from controller.report.markdown import render_markdown
from controller.report.options import EXIT_GATE_FAILED, EXIT_OK, BadInput, ReportOptions
from controller.report.plots import all_figures
from controller.report.summary import Analysis, ReportSummary, analyse, summarise
from trainer.contract import NAME_PATTERN, TrialSpec, check_name
from trainer.store import StoreError, open_store

RERUN_DIR = "rerun"


def rerun_spec(data: SweepData, c: RankedConfig, max_budget: float) -> TrialSpec | None:
    """The trial.json that reruns config ``c`` on the sweep's top budget, in a ``-rerun`` sweep.

    It starts from the config's own trial.json (same data, seed, store), so the rerun trains what
    the sweep trained; None when that trial.json is no longer a valid TrialSpec.
    """
    row = next((t for t in data.trials if t.trial_id == c.trial_id), None)
    if row is None:
        return None
    trial_id = c.config_id if c.config_id.startswith("it") else f"top{c.rank}"
    sweep = f"{data.sweep[:57].rstrip('-')}-rerun"
    try:
        check_name(sweep, "sweep")
        check_name(trial_id, "trial_id")
        return TrialSpec.model_validate(
            # from scratch at the top budget: a promotion's lower rung is not in the rerun sweep
            {
                **row.spec,
                "sweep": sweep,
                "trial_id": trial_id,
                "budget": max_budget,
                "continue_from": None,
            }
        )
    except ValueError:
        event(
            "report.rerun_skipped",
            logging.WARNING,
            config=c.config_id,
            why=f"names must match {NAME_PATTERN}",
        )
        return None


_SECRET_HINTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")


def trainer_command(spec_yaml: str | None) -> str:
    """The sweep's trainer command with its env (spec.yaml's ``trainer``), shell-quoted.

    Default ``python -m trainer``; spec.yaml is the controller's and read defensively. Env values
    whose names look secret are never copied (the sweep spec should hold none anyway).
    """
    trainer: Any = {}
    if spec_yaml:
        try:
            loaded = yaml.safe_load(spec_yaml)
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict) and isinstance(loaded.get("trainer"), dict):
            trainer = loaded["trainer"]
    command = trainer.get("command")
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        command = ["python", "-m", "trainer"]
    env = trainer.get("env") if isinstance(trainer.get("env"), dict) else {}
    assignments = [
        f"{k}={shlex.quote(str(v))}"
        for k, v in sorted(env.items())
        if isinstance(k, str)
        and k.isidentifier()
        and not any(h in k.upper() for h in _SECRET_HINTS)
    ]
    return " ".join([*assignments, *(shlex.quote(c) for c in command)])


def write_report(a: Analysis, s: ReportSummary, out: Path) -> Path:
    """index.html, every PNG, summary.json and rerun/<config>.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    figures = all_figures(a)
    for name, png in figures.items():
        (out / name).write_bytes(png)
    reruns: dict[str, str] = {}
    max_budget = max(a.budgets) if a.budgets else 1.0
    (out / RERUN_DIR).mkdir(exist_ok=True)
    command = trainer_command(a.data.spec_yaml)
    for c in s.top:
        spec = rerun_spec(a.data, c, max_budget)
        if spec is None:
            continue
        rel = f"{RERUN_DIR}/{spec.trial_id}.json"
        (out / rel).write_text(spec.model_dump_json(indent=1) + "\n")
        reruns[c.config_id] = f"{command} --trial {rel}"
    (out / "summary.json").write_text(s.model_dump_json(indent=1) + "\n")
    page = out / "index.html"
    page.write_text(render_page(a, s, figures, reruns))
    return page


def open_sweep(url: str, opts: ReportOptions, what: str) -> SweepData:
    """A sweep's rows; BadInput when the URL cannot name a store or holds no readable trial
    (StoreError, a store failing while it is read, goes up: that is no fault of the input)."""
    try:
        store = open_store(url, endpoint_url=opts.endpoint_url, region=opts.region)
    except (StoreError, ValueError) as exc:  # an unsupported scheme, an s3:// URL without bucket
        raise BadInput(f"{what} {url}: {exc}") from exc
    try:
        data = load_sweep(store, url)
    except StoreError as exc:
        raise StoreError(f"{what} {url}: {exc}") from exc
    if not data.trials:
        raise BadInput(
            f"{what}: no readable trial under {store.url('trials/')}; the URL must be "
            "the sweep's folder (<store root>/<sweep>), not the store root"
            + (f" ({len(data.notes)} unreadable trial folders)" if data.notes else "")
        )
    return data


def build_report(opts: ReportOptions) -> int:
    """Every output the options ask for; the exit code (EXIT_GATE_FAILED when a gate failed)."""
    t0 = time.perf_counter()
    data = open_sweep(opts.sweep_url, opts, "SWEEP_URL")
    baseline: SweepData | None = None
    if opts.baseline is not None:  # before the analysis: a wrong baseline fails in seconds
        baseline = open_sweep(opts.baseline, opts, "--baseline")
        mine, theirs = unit_of(data.trials), unit_of(baseline.trials)
        if mine != theirs:
            raise BadInput(
                f"--baseline {opts.baseline}: its budgets are in {theirs}, this sweep's in "
                f"{mine}; losses at different budget units do not compare"
            )
    # the rows live until the end: the garbage collector need not walk them again (nor touch
    # their pages in the forked workers); unfrozen after, for callers that build several reports
    gc.freeze()
    try:
        return _analyse_and_write(data, baseline, opts, t0=t0)
    finally:
        gc.unfreeze()


def evaluate_gates(
    s: ReportSummary, baseline: SweepData | None, opts: ReportOptions
) -> list[GateResult]:
    gates = []
    if opts.fail_if_loss_above is not None:
        gates.append(loss_gate(s.incumbent, s.budget_unit, opts.fail_if_loss_above))
    if baseline is not None and opts.baseline is not None and opts.fail_if_worse_by is not None:
        gates.append(
            baseline_gate(
                s.per_budget,
                budget_stats(baseline.trials),
                baseline_url=opts.baseline,
                budget_unit=s.budget_unit,
                max_worse=opts.fail_if_worse_by,
            )
        )
    return gates


def _analyse_and_write(
    data: SweepData, baseline: SweepData | None, opts: ReportOptions, *, t0: float
) -> int:
    a = analyse(data, seed=opts.seed)
    s = summarise(a, top_k=opts.top_k)
    s = s.model_copy(update={"gates": evaluate_gates(s, baseline, opts)})
    if opts.format == "json":
        print(s.model_dump_json(indent=1))
    target = opts.page_dir(data.sweep)
    page: Path | None = None
    if target is not None:
        page = write_report(a, s, target)
        event(
            "report.written",
            page=str(page),
            trials=len(data.trials),
            seconds=round(time.perf_counter() - t0, 2),
        )
    if opts.format == "markdown":
        text = render_markdown(s, str(page) if page is not None else None)
        if opts.out is None:
            sys.stdout.write(text)
        else:
            _write(opts.out, text.encode())
    if opts.junit is not None:
        _write(opts.junit, render_junit(s))
    if opts.format == "html" and page is not None:
        print(f"report written to {page}")
    for g in s.gates:  # stderr: stdout may be a document (--json, markdown) that CI parses
        print(f"kubohb report: {g.line}", file=sys.stderr)
    return EXIT_OK if all(g.passed for g in s.gates) else EXIT_GATE_FAILED


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
