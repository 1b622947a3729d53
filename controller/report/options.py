"""What one ``kubohb report`` run was asked for (validated once, at the CLI boundary) and its
exit codes.

Exit codes: 0 done (every gate passed), 4 a gate failed, 2 bad input (a sweep URL that holds no
readable trial or has an unsupported scheme, invalid numbers, flags that do not go together),
1 any other error (a store that fails while being read, an output that cannot be written).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_GATE_FAILED = 0, 1, 2, 4

ReportFormat = Literal["html", "json", "markdown"]


class BadInput(Exception):  # noqa: N818  (reads as what it is: the user's input)
    """The command line or a sweep URL is wrong; the message says which and what to do."""


class ReportOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    sweep_url: str
    format: ReportFormat = "html"
    # html: the report folder; json: the folder, HTML written only when given; markdown: the file
    out: Path | None = None
    html: Path | None = None  # the report folder, with any format (the only way with markdown)
    junit: Path | None = None
    endpoint_url: str | None = None  # for the sweep and the baseline alike
    region: str | None = None
    top_k: int = Field(default=10, ge=1)
    seed: int = 0
    fail_if_loss_above: float | None = None
    baseline: str | None = None
    fail_if_worse_by: float | None = Field(default=None, ge=0)

    @field_validator("fail_if_loss_above", "fail_if_worse_by")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _together(self) -> Self:
        if (self.baseline is None) != (self.fail_if_worse_by is None):
            raise ValueError("--baseline and --fail-if-worse-by go together: give both or neither")
        if self.format != "markdown" and self.out is not None and self.html is not None:
            raise ValueError(f"--out and --html both name the report folder with {self.format}")
        return self

    def page_dir(self, sweep: str) -> Path | None:
        """Where the HTML report goes, or None when this run writes none."""
        if self.format == "html":
            return self.html or self.out or Path(f"report-{sweep}")
        if self.format == "json":
            return self.html or self.out
        return self.html

    @property
    def has_gates(self) -> bool:
        return self.fail_if_loss_above is not None or self.baseline is not None
