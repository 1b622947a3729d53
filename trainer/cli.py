"""Command line of the trainer image: ``python -m trainer --trial URL`` or ``--describe CONFIG``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from types import FrameType

from trainer.contract import ExitCode

OK, BAD, INFRA = int(ExitCode.OK), int(ExitCode.BAD_TRIAL), int(ExitCode.INFRA)
STOPPED = int(ExitCode.CANCELLED)
EPILOG = f"""\
The trial URL is the store URL of trial.json, <root>/<sweep>/trials/<trial>/trial.json, with
root file:///dir or s3://bucket/prefix. KUBOHB_STORE_ENDPOINT and KUBOHB_STORE_REGION give the S3
endpoint and region used to read it (credentials: the usual AWS_* variables or profiles).
Outputs go next to it: metrics.jsonl, checkpoint.pt, trainer.log, and result.json (written last).
A trainer started again on the same trial resumes from checkpoint.pt; one started when result.json
exists exits at once.

exit codes:
  {OK}   result.json written (status ok, or failed: NaN/inf loss, out of memory, more than
      max_params parameters, a network that cannot be built), or it already existed
  {BAD}   trial.json or its config is invalid (not retriable; the log names the field)
  {INFRA}  store unreachable, data set missing, or CUDA asked for but absent (retriable: no
      result; a restart resumes from the checkpoint)
  {STOPPED} stopped by SIGTERM/SIGINT (a reclaim, eviction or cancel): checkpointed at the next
      step boundary once training runs (retriable: the next attempt resumes there)
  1   unexpected error (a bug; traceback on stderr)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train one trial of the Zela et al. 2018 joint architecture + hyperparameter "
        "space for its budget, writing metrics, checkpoints and the result to the store.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--trial",
        default=os.environ.get("KUBOHB_TRIAL"),
        metavar="URL",
        help="store URL of trial.json (default: $KUBOHB_TRIAL)",
    )
    what.add_argument(
        "--describe",
        metavar="CONFIG_JSON",
        help="print the parameter count and per-stage widths/blocks/branches of a config "
        "(a JSON object; missing parameters take their defaults) without training",
    )
    parser.add_argument(
        "--dataset",
        choices=["cifar10", "fashion_mnist", "synthetic"],
        default="cifar10",
        help="input channels for --describe (default: cifar10)",
    )
    args = parser.parse_args(argv)
    if args.describe is not None:
        return _describe(args.describe, args.dataset)
    if not args.trial:
        parser.error("--trial URL or the KUBOHB_TRIAL environment variable is required")
    _leave_on_stop()  # until run_trial's own handler is in, after torch's import (seconds)
    from trainer.run import run_trial  # torch is imported only when training

    return run_trial(args.trial)


def _leave_on_stop() -> None:
    """SIGTERM / SIGINT exit CANCELLED at once. A pod's PID 1 gets no default action for
    SIGTERM from the kernel: without a handler a stop during the imports would be dropped and
    the pod SIGKILLed after its grace period. Nothing is written yet, so leaving is safe."""

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(int(ExitCode.CANCELLED))

    for s in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(s) is not signal.SIG_IGN:  # a background job's SIGINT stays ignored
            signal.signal(s, leave)


def _describe(config_json: str, dataset: str) -> int:
    from trainer.hparams import parse_config
    from trainer.model import ModelError, describe

    try:
        raw = json.loads(config_json)
        if not isinstance(raw, dict):
            raise ValueError("the config must be a JSON object")
        cfg = parse_config(raw)
        out = describe(cfg, in_channels=1 if dataset == "fashion_mnist" else 3)
    except (ValueError, ModelError) as exc:
        print(f"--describe: invalid config: {exc}", file=sys.stderr)
        return ExitCode.BAD_TRIAL
    out["config"] = cfg.model_dump()
    print(json.dumps(out))
    return ExitCode.OK
