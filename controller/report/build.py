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
from controller.report.html import render_page
from controller.report.incumbent import RankedConfig
from controller.report.load import SweepData, load_sweep
from controller.report.plots import all_figures
from controller.report.summary import Analysis, ReportSummary, analyse, summarise
from trainer.contract import NAME_PATTERN, TrialSpec, check_name
from trainer.store import open_store

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
            {**row.spec, "sweep": sweep, "trial_id": trial_id, "budget": max_budget}
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


def build_report(
    sweep_url: str,
    *,
    out: Path | None,
    as_json: bool,
    endpoint_url: str | None,
    region: str | None,
    top_k: int,
    seed: int,
) -> int:
    t0 = time.perf_counter()
    store = open_store(sweep_url, endpoint_url=endpoint_url, region=region)
    data = load_sweep(store, sweep_url)
    if not data.trials:
        print(
            f"kubohb report: no readable trial under {store.url('trials/')}; SWEEP_URL must be "
            "the sweep's folder (<store root>/<sweep>), not the store root"
            + (f" ({len(data.notes)} unreadable trial folders)" if data.notes else ""),
            file=sys.stderr,
        )
        return 1
    # the rows live until the end: the garbage collector need not walk them again (nor touch
    # their pages in the forked workers); unfrozen after, for callers that build several reports
    gc.freeze()
    try:
        return _analyse_and_write(data, out=out, as_json=as_json, top_k=top_k, seed=seed, t0=t0)
    finally:
        gc.unfreeze()


def _analyse_and_write(
    data: SweepData, *, out: Path | None, as_json: bool, top_k: int, seed: int, t0: float
) -> int:
    a = analyse(data, seed=seed)
    s = summarise(a, top_k=top_k)
    if as_json:
        print(s.model_dump_json(indent=1))
        if out is None:
            return 0
    target = out if out is not None else Path(f"report-{data.sweep}")
    page = write_report(a, s, target)
    event(
        "report.written",
        page=str(page),
        trials=len(data.trials),
        seconds=round(time.perf_counter() - t0, 2),
    )
    if not as_json:
        print(f"report written to {page}")
    return 0
