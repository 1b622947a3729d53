"""The ``kubohb report`` subcommand: argument parsing and the thin I/O shell around the report.

``register(subparsers)`` adds the subcommand to the ``kubohb`` CLI; ``main(argv)`` runs it
standalone (``python -m controller.report``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from controller.report.options import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    BadInput,
    ReportOptions,
)

EPILOG = (
    "exit codes: 0 done, every gate passed; 4 a gate failed; 2 bad input (a SWEEP_URL or "
    "--baseline that holds no readable trial, invalid numbers); 1 other errors (a store failing "
    "while read, an output that cannot be written)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``kubohb`` argparse CLI; the handler is ``args.func(args) -> int``."""
    parser = subparsers.add_parser(
        "report",
        help="write an HTML report (Figure 1, rank correlation, fANOVA) of a sweep",
        description=(
            "Build a self-contained HTML report and its PNGs from a sweep's store alone "
            "(works on a running or finished sweep). --json prints the numbers for CI, "
            "--format markdown a summary for $GITHUB_STEP_SUMMARY, --junit FILE a JUnit XML; "
            "--fail-if-loss-above and --baseline/--fail-if-worse-by make it a CI gate."
        ),
        epilog=EPILOG,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sweep_url",
        metavar="SWEEP_URL",
        help="the sweep's folder in the store: file:///dir/<sweep>, a path, or s3://bucket/prefix/<sweep>",
    )
    parser.add_argument(
        "--format",
        choices=["html", "json", "markdown"],
        default=None,
        help="html (default): write the report folder; json: print the numbers (as --json); "
        "markdown: print a GitHub-flavoured summary (to --out FILE instead of stdout)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="html: the report folder (default ./report-<sweep>); json: the report folder, "
        "written only when given; markdown: the file for the summary",
    )
    parser.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the HTML report folder here (with --format markdown, the only way to "
        "get one; the summary then names its path)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report's numbers as JSON on stdout"
    )
    parser.add_argument(
        "--junit",
        type=Path,
        default=None,
        metavar="FILE",
        help="write JUnit XML: a testcase per budget (fails without a finished trial) and per gate",
    )
    parser.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint URL")
    parser.add_argument("--region", default=None, help="S3 region")
    parser.add_argument(
        "--top-k",
        type=_positive,
        default=10,
        help="rows of the top configurations table (default 10)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random forest seed for parameter importance"
    )
    gates = parser.add_argument_group(
        "gates", "exit 4 when one fails; each prints one line on stderr saying what it compared"
    )
    gates.add_argument(
        "--fail-if-loss-above",
        type=_finite("--fail-if-loss-above"),
        default=None,
        metavar="X",
        help="fail when the incumbent's loss (the best loss at the largest budget with a result) "
        "is above X, or when there is no incumbent",
    )
    gates.add_argument(
        "--baseline",
        default=None,
        metavar="SWEEP_URL2",
        help="a baseline sweep for --fail-if-worse-by (same --endpoint-url and --region)",
    )
    gates.add_argument(
        "--fail-if-worse-by",
        type=_finite("--fail-if-worse-by", minimum=0.0),
        default=None,
        metavar="D",
        help="fail when this sweep's best loss is above the baseline's by more than D "
        "(absolute), compared at the largest budget both sweeps have a result on",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--top-k must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--top-k must be 1 or more, not {value}")
    return value


def _finite(flag: str, minimum: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float (argparse turns the error into exit 2)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{flag} must be a finite number, not {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} must be {minimum:g} or more, not {text}")
        return value

    return parse


def options(args: argparse.Namespace) -> ReportOptions:
    """The parsed command line as ReportOptions; BadInput names the flags that clash."""
    if args.json and args.format not in (None, "json"):
        raise BadInput(f"--json and --format {args.format} ask for two formats: give one")
    try:
        return ReportOptions(
            sweep_url=args.sweep_url,
            format="json" if args.json else (args.format or "html"),
            out=args.out,
            html=args.html,
            junit=args.junit,
            endpoint_url=args.endpoint_url,
            region=args.region,
            top_k=args.top_k,
            seed=args.seed,
            fail_if_loss_above=args.fail_if_loss_above,
            baseline=args.baseline,
            fail_if_worse_by=args.fail_if_worse_by,
        )
    except ValidationError as exc:
        why = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise BadInput(why) from None


def run(args: argparse.Namespace) -> int:
    """Load the sweep, analyse it, write the outputs. Returns the process exit code."""
    from controller.log import setup
    from controller.report.build import build_report  # heavy imports only when used
    from trainer.store import StoreError

    setup()  # structured events on stderr; stdout stays for --json and markdown
    try:
        return build_report(options(args))
    except BadInput as exc:
        print(f"kubohb report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as exc:
        print(f"kubohb report: cannot read the sweep: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # mostly an output that cannot be written (--junit naming a folder)
        print(f"kubohb report: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubohb report", epilog=EPILOG)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)
