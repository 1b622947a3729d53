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
