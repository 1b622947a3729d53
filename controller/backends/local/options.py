"""Options of the local backend, as written under ``backend.local`` in a sweep spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocalOptions(BaseModel):
    """The local backend: trials as subprocesses of this machine."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run_dir: str = "runs/.local"  # pid files, exit codes and logs, for adoption after a restart
    # GPU ids to hand out one slot each (CUDA_VISIBLE_DEVICES); None = detect with nvidia-smi.
    gpus: list[int] | None = None
    cancel_grace_s: float = Field(10.0, ge=0)
    # A trial's log keeps its first 64 KiB and its latest output up to this many MiB, in the
    # wrapper's memory, the run folder and the store: a trainer that floods stdout fills none.
    log_cap_mb: float = Field(8.0, ge=0.0625, le=1024)
    # How often a running trial's log is put to the store (and once more at its end).
    log_upload_interval_s: float = Field(30.0, ge=0.1, le=86400)
