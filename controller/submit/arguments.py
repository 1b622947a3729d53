"""`kubohb submit`'s command line: its flags and their parsing. Light on purpose: the CLI builds
every subcommand's parser at start-up, and the API client and the follow loop are imported only
when `submit` runs (``command.py``)."""

from __future__ import annotations

import argparse
import re
from typing import Any

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h30m``."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 600, 45m or 2h30m")
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "submit",
        help="create a sweep's controller Job in a namespace prepared by a `mode: namespace` "
        "chart install; --wait follows it and exits with the sweep's code",
    )
    p.add_argument("file", metavar="SWEEP.yaml")
    p.add_argument("--namespace", "-n", default=None, help="default: the kubeconfig context's")
    p.add_argument(
        "--install",
        default=None,
        metavar="RELEASE",
        help="the namespace install's release name, when the namespace holds several",
    )
    p.add_argument(
        "--name-suffix",
        default=None,
        metavar="S",
        help="appended to the sweep's name (<name>-<S>), e.g. $GITHUB_SHA: one sweep per commit",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="submit the same sweep shrunk to two tiny trials under <name>-smoke (as `kubohb run "
        "--smoke`): proves the images, store, credentials, RBAC and GPU requests on the cluster",
    )
    p.add_argument("--wait", action="store_true", help="follow the sweep until it ends")
    p.add_argument(
        "--timeout",
        type=parse_duration,
        default=None,
        metavar="D",
        help="with --wait: give up after D (600, 45m, 2h), exit 1; the sweep keeps running",
    )
    p.add_argument(
        "--cancel-on-timeout",
        action="store_true",
        help="with --timeout: delete the controller Job and its trial Jobs when giving up",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="with --wait: seconds between looks at the store and the Job (default 10)",
    )
    p.set_defaults(func=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    from controller.submit.command import cmd_submit

    return cmd_submit(args)
