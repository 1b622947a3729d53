"""A trainer-compatible program with a synthetic multi-fidelity loss (torch-free, fast).

It honours the trainer's contract (``--trial URL`` or ``KUBOHB_TRIAL``; result.json written last;
exit codes of ``trainer.contract``) so that sweeps with hundreds of trials, and the controller's
and Kubernetes backend's end-to-end tests, run in seconds. The loss is a sum of per-parameter
bowls (a known optimum) plus deterministic noise that shrinks as 1/sqrt(budget), so rank
correlation between budgets improves with the budget.

Behaviour knobs for failure tests come from the config itself (so BOHB can learn from them):
``fail`` (bool: write a failed result), ``crash`` (exit with this code, no result),
``sleep`` (seconds to sleep before finishing), ``garbage`` (write an invalid result.json).

Test hooks from the environment (the controller's tests pick trials by id):
``KUBOHB_SYNTHETIC_FAULTS`` = JSON ``{trial_id: fault}`` with fault ``fail``, ``crash`` (exit 1),
``bad`` (exit 2, the bad-trial code), ``infra`` (exit 75 every time), ``lost_once`` (exit 75 the
first time only), ``hang`` (sleep forever), ``garbage``, ``result_dir`` (a directory where
result.json belongs, on a file store), ``forge:<trial>`` (also writes a loss-0 result, with this
trial's token, into that other trial's folder, and announces it), ``huge_info`` (2 MB of `info`,
through ``publish``), ``huge_result`` (a 2 MB result.json written raw, bypassing ``publish``),
``long_error`` (a failed result with a 100,000-character error); ``KUBOHB_SYNTHETIC_INVOCATIONS`` =
a local
file that gets one line per invocation (``trial_id pid``), so tests count how often a trial ran;
``KUBOHB_SYNTHETIC_SLEEP`` = seconds every trial sleeps before finishing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from trainer.contract import FILE_METRICS, FILE_RESULT, ExitCode, TrialInfo, TrialResult, TrialSpec
from trainer.results import has_own_result, publish
from trainer.store import FileStore, Store, StoreError, open_store, open_url


def synthetic_loss(config: dict[str, object], budget: float, max_budget: float, seed: int) -> float:
    """Noise shrinks as 1/sqrt(budget); the noise-free value is in [0, 1]."""
    total, count = 0.0, 0
    for name in sorted(config):
        value = config[name]
        if isinstance(value, bool) or name in ("fail", "crash", "sleep", "garbage"):
            continue
        if isinstance(value, int | float):
            # a bowl per dimension, centred at 0.3 of a squashed value
            x = math.tanh(abs(float(value)) / (1.0 + abs(float(value))))
            total += (x - 0.3) ** 2
            count += 1
        elif isinstance(value, str):
            total += (int(hashlib.sha256(value.encode()).hexdigest(), 16) % 7) / 28.0
            count += 1
    clean = total / max(count, 1)
    digest = hashlib.sha256(f"{sorted(config.items())}|{budget}|{seed}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2**64
    noise = (uniform - 0.5) * 0.2 * math.sqrt(max_budget / budget) / math.sqrt(max_budget)
    return min(1.0, max(0.0, clean + noise))


def run(trial_url: str) -> int:
    started = datetime.now(UTC)
    try:
        store, key = open_url(trial_url)  # the S3 store reads KUBOHB_STORE_ENDPOINT/_REGION
        raw = store.get(key)
    except StoreError as exc:
        print(f"synthetic trainer: cannot read {trial_url}: {exc}", file=sys.stderr)
        return ExitCode.INFRA
    try:  # a trial.json that is not JSON is a bad trial (exit 2) as for the real trainer
        spec = TrialSpec.model_validate_json(raw)
    except ValueError as exc:
        print(f"synthetic trainer: invalid trial spec {trial_url}: {exc}", file=sys.stderr)
        return ExitCode.BAD_TRIAL
    cfg = dict(spec.config)
    _record_invocation(spec.trial_id)
    fault = json.loads(os.environ.get("KUBOHB_SYNTHETIC_FAULTS") or "{}").get(spec.trial_id)
    store = open_store(
        spec.store_root, endpoint_url=spec.store_endpoint_url, region=spec.store_region
    )
    out = spec.prefix
    try:
        if has_own_result(store, spec):
            return 0
    except StoreError as exc:  # as the real trainer: the store is the problem, retry later
        print(f"synthetic trainer: {exc}", file=sys.stderr)
        return ExitCode.INFRA
    if os.environ.get("KUBOHB_SYNTHETIC_SLEEP"):
        time.sleep(float(os.environ["KUBOHB_SYNTHETIC_SLEEP"]))
    if fault:
        code = _apply_fault(fault, store, spec, cfg)
        if code is not None:
            return code
    if cfg.get("sleep"):
        time.sleep(float(cfg["sleep"]))
    if cfg.get("crash"):
        return int(cfg["crash"])
    if cfg.get("garbage"):
        store.put(f"{out}/{FILE_RESULT}", b"{not json")
        return 0
    max_budget = float(os.environ.get("KUBOHB_MAX_BUDGET", spec.budget))
    loss = synthetic_loss(cfg, spec.budget, max_budget, spec.seed)
    store.put(
        f"{out}/{FILE_METRICS}",
        f'{{"epoch": {spec.budget}, "step": 1, "train_loss": {loss}, '
        f'"val_error": {loss}, "lr": 0.0, "seconds": 0.0}}\n'.encode(),
    )
    info = TrialInfo(epochs=spec.budget, train_seconds=0.0, device="synthetic", params=0)
    if cfg.get("fail"):
        result = TrialResult(
            trial_id=spec.trial_id, status="failed", error="config asked to fail", info=info
        )
    else:
        result = TrialResult(trial_id=spec.trial_id, status="ok", loss=loss, info=info)
    result = result.model_copy(update={"started_at": started, "finished_at": datetime.now(UTC)})
    publish(store, spec, result)
    return 0


def _record_invocation(trial_id: str) -> None:
    path = os.environ.get("KUBOHB_SYNTHETIC_INVOCATIONS")
    if path:
        with Path(path).open("a") as f:  # one short line per append: atomic on a local disk
            f.write(f"{trial_id} {os.getpid()}\n")


def _apply_fault(fault: str, store: Store, spec: TrialSpec, cfg: dict[str, object]) -> int | None:
    """Act out a test fault; an exit code, or None to go on (with cfg changed)."""
    out = spec.prefix
    if fault.startswith("forge:"):
        victim = spec.model_copy(update={"trial_id": fault.removeprefix("forge:")})
        forged = TrialResult(trial_id=victim.trial_id, status="ok", loss=0.0)
        publish(store, victim.model_copy(update={"token": spec.token}), forged)
        return None
    if fault in ("huge_info", "huge_result"):  # a valid result, but 2 MB of it
        info = TrialInfo.model_validate({"blob": "x" * (2 << 20)})
        big = TrialResult(trial_id=spec.trial_id, status="ok", loss=0.5, info=info)
        if fault == "huge_info":
            publish(store, spec, big)
        else:
            raw = big.model_copy(update={"token": spec.token}).model_dump_json().encode()
            store.put(f"{out}/{FILE_RESULT}", raw)
        return 0
    if fault == "long_error":
        error = "diverged: " + "e" * 100_000
        publish(store, spec, TrialResult(trial_id=spec.trial_id, status="failed", error=error))
        return 0
    if fault == "lost_once":
        marker = f"{out}/lost-once"
        if store.exists(marker):
            return None
        store.put(marker, b"1")
        return ExitCode.INFRA
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "result_dir" and isinstance(store, FileStore):  # an unreadable result.json
        (store.dir / out / FILE_RESULT).mkdir(parents=True, exist_ok=True)
        return 0
    codes = {"crash": 1, "bad": ExitCode.BAD_TRIAL, "infra": ExitCode.INFRA}
    if fault in codes:
        return codes[fault]
    if fault in ("fail", "garbage"):
        cfg[fault] = True
        return None
    raise ValueError(f"KUBOHB_SYNTHETIC_FAULTS: unknown fault {fault!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.synthetic",
        description="Synthetic multi-fidelity objective that follows the trainer's contract.",
    )
    parser.add_argument("--trial", default=os.environ.get("KUBOHB_TRIAL"), help="trial.json URL")
    args = parser.parse_args(argv)
    if not args.trial:
        parser.error("--trial or KUBOHB_TRIAL is required")
    return run(args.trial)


if __name__ == "__main__":
    sys.exit(main())
