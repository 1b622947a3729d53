"""Options of the simulated backend, as written under ``backend.simulated`` in a sweep spec.

Each knob is one mechanism of a GPU cluster that changes what a sweep costs or how long it takes:
the quota (queueing), pod start latency (slots held while nothing trains), container start-up,
training speed, preemption (work lost since the last checkpoint, a new admission and pod start),
crashes (an attempt lost without a result) and the checkpoint interval (how much a lost attempt
keeps). Defaults describe a plain on-demand cluster: 16 GPUs, ~30 s pod starts, no faults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SimulatedOptions(BaseModel):
    """The simulated backend: trials in virtual time on a simulated GPU cluster."""

    model_config = ConfigDict(extra="forbid")

    # The GPU quota: slots admitted at once, FIFO by launch as slots free (as Kueue admits
    # workloads under a ClusterQueue's quota). A trial takes max(1, resources.gpus) slots.
    # None = unlimited (every launch is admitted at once).
    gpus: int | None = Field(16, ge=1)
    # Pod start latency after admission (scheduling + image pull), Normal(mean, sd) clipped to
    # >= 0: the slot is held, nothing runs yet, the trial is reported pending.
    pod_start_s: float = Field(30.0, ge=0, allow_inf_nan=False)
    pod_start_sd_s: float = Field(15.0, ge=0, allow_inf_nan=False)
    # Container start to the first training step (imports, data loading, model build): the
    # attempt is running (counted in run_s and deadlines) but not training.
    startup_s: float = Field(0.0, ge=0, allow_inf_nan=False)
    # Training seconds per epoch, for epoch budgets (training seconds = budget × this). A seconds
    # budget trains `budget` seconds.
    seconds_per_epoch: float = Field(60.0, gt=0, allow_inf_nan=False)
    # Per rung (budget index), when rungs run on device classes of different speeds
    # (`cost.classes`, `kubohb estimate`); a rung past the list uses seconds_per_epoch.
    rung_seconds_per_epoch: list[float] | None = None
    # Preemptions per running slot-hour (a Poisson process while running; a 4-GPU trial is hit
    # four times as often). A preempted attempt keeps its progress up to its last checkpoint,
    # goes back to the queue and needs a new admission and pod start, as a Kubernetes Job whose
    # pod was preempted does; it is not a new attempt.
    preemptions_per_gpu_hour: float = Field(0.0, ge=0, allow_inf_nan=False)
    # Probability that an attempt crashes: its process dies at a uniform point of its planned
    # run, exit code 1, no result (the loop sees a lost trial and may relaunch it).
    crash_probability: float = Field(0.0, ge=0, le=1)
    # Training progress is checkpointed at multiples of this many training seconds; a preempted,
    # crashed or cancelled attempt keeps what it checkpointed, and a relaunch resumes from it.
    checkpoint_every_s: float = Field(300.0, gt=0, allow_inf_nan=False)
    # Seed of every random draw; an attempt's draws come from its own generator, seeded by
    # (seed, trial id, attempt), so the timeline does not depend on the order of calls.
    seed: int = Field(0, ge=0)
    # The loss each finished trial reports. "synthetic" = trainer.synthetic's loss (the same a
    # local sweep of the synthetic trainer sees); other objectives are plugged in from Python.
    objective: Literal["synthetic"] = "synthetic"
