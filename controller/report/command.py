"""The ``kubohb report`` subcommand: argument parsing and the thin I/O shell around the report.

``register(subparsers)`` adds the subcommand to the ``kubohb`` CLI; ``main(argv)`` runs it
standalone (``python -m controller.report``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``kubohb`` argparse CLI; the handler is ``args.func(args) -> int``."""
    parser = subparsers.add_parser(
        "report",
        help="write an HTML report (Figure 1, rank correlation, fANOVA) of a sweep",
        description=(
            "Build a self-contained HTML report and its PNGs from a sweep's store alone "
            "(works on a running or finished sweep). --json prints the numbers for CI."
        ),
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
        "--out",
        type=Path,
        default=None,
        help="output folder for index.html, the PNGs and summary.json (default: ./report-<sweep>; "
        "with --json, HTML is written only when --out is given)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report's numbers as JSON on stdout"
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--top-k must be 1 or more, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Load the sweep, analyse it, write the outputs. Returns the process exit code."""
    from controller.log import setup
    from controller.report.build import build_report  # heavy imports only when used
    from trainer.store import StoreError

    setup()  # structured events on stderr; stdout stays for --json
    try:
        return build_report(
            args.sweep_url,
            out=args.out,
            as_json=args.json,
            endpoint_url=args.endpoint_url,
            region=args.region,
            top_k=args.top_k,
            seed=args.seed,
        )
    except StoreError as exc:
        print(f"kubohb report: cannot read the sweep: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubohb report")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)
