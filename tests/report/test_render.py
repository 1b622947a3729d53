"""The report page renders in headless Chromium: no console errors, every figure decoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.cdp import check_page, chromium_binary
from tests.report.conftest import BuiltReport

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_page_renders_in_headless_chromium(built_report: BuiltReport, tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Debian's chromium is not installed (make install adds it when run as root)")
    page = built_report.out / "index.html"
    check = check_page(page, binary)
    shot = tmp_path / "screenshot.png"  # beside the report would add an eighth PNG
    shot.write_bytes(check.screenshot)
    print(f"screenshot of the rendered report: {shot}")
    assert check.console_errors == []
    assert check.title == f"kubohb report: {built_report.demo.sweep}"
    figures = sorted(p.name for p in built_report.out.glob("*.png"))
    assert len(check.images) == len(figures) >= 8
    broken = [alt for alt, complete, width in check.images if not (complete and width > 0)]
    assert broken == []
    assert check.screenshot.startswith(PNG_MAGIC) and len(check.screenshot) > 50_000
