"""Orchestrates load → analyse → write (filled in below)."""

from __future__ import annotations

from pathlib import Path


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
    raise NotImplementedError("the report is being written (issue 6)")
