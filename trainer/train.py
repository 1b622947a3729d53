"""The training loop of one trial: budget-bounded, timed, resumable (no store I/O here).

Budget ``seconds`` counts only training-step time (forward, backward, optimiser step), measured
around each step: with the host clock on CPU, with CUDA events on the GPU; batch preparation and
evaluation are excluded. The loop stops after the first step at which the budget is reached.
Budget ``epochs`` runs round(epochs x steps_per_epoch) steps. The learning rate is set before every
step from the schedule (trainer.schedule).

The host never waits for the device per step: losses (for the NaN/inf check and the epoch's mean)
and, on CUDA, step times are read together every ``SYNC_EVERY`` steps (a *flush*), at an epoch's
end and before a checkpoint. On CUDA a seconds budget shrinks that window as the budget runs out,
so the stop stays exact (docs/trainer.md, "GPU path").

Everything a resume needs (model, optimiser, AMP scaler, schedule, progress, every RNG) is in
``state_dict()``, which flushes first; a resumed CPU run continues bit-identically (the epoch's
sample order is derived from the seed and the epoch number).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.augment import Augment, mixup
from trainer.data import Splits
from trainer.hparams import TrainConfig
from trainer.model import Network
from trainer.schedule import Schedule
from trainer.steptime import CudaTimer, HostTimer, StepTimer

EVAL_BATCH = 500
# N: steps between flushes. A diverged run stops at most N - 1 steps after its first NaN/inf loss;
# on a GPU one wait per N steps costs well under 1 % of a step's time (docs/trainer.md).
SYNC_EVERY = 16
# Seconds budget on CUDA: a window of unread steps may use at most 1/SAFETY of the budget left,
# at the slowest step time of the window before, so it ends before the budget does.
SAFETY = 2.0


class DeviceUnavailableError(RuntimeError):
    """The trial asks for CUDA on a machine without it (retriable elsewhere: exit 75)."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the config cannot train."""


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps per epoch: the last partial batch is dropped (drop_last, as the authors)."""
    return max(1, n_train // batch_size)


@dataclass
class Progress:
    step: int = 0  # optimiser steps done in total
    epoch: int = 0  # current epoch (0-based); complete epochs before it
    step_in_epoch: int = 0
    seconds: float = 0.0  # cumulative training-step seconds (the budget unit)
    images: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_n: int = 0
    last_step_seconds: float = 0.0
    eval_seconds: float = 0.0  # wall time spent evaluating (not budget)
    # the learning rate of the last step: what the epoch's metrics line reports, also when an
    # attempt resumes exactly at an epoch's end (None in checkpoints from before it)
    last_lr: float | None = None


def cgroup_cpus(cpu_max: str | None = None) -> int | None:
    """CPUs allowed by the cgroup v2 quota (``cpu.max``: "200000 100000" = 2), None if unlimited.

    A pod with a CPU limit on a big node otherwise gets one torch thread per node core and is
    throttled hard.
    """
    if cpu_max is None:
        try:
            cpu_max = Path("/sys/fs/cgroup/cpu.max").read_text()
        except OSError:
            return None
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return max(1, math.ceil(int(parts[0]) / int(parts[1])))
    except (ValueError, ZeroDivisionError):
        return None


def limit_cpu_threads() -> int:
    """Cap torch's CPU threads at the cgroup quota and the CPUs this process may run on, unless
    OMP_NUM_THREADS says otherwise. Returns the thread count."""
    if not os.environ.get("OMP_NUM_THREADS"):
        allowed = [torch.get_num_threads(), len(os.sched_getaffinity(0))]
        quota = cgroup_cpus()
        if quota is not None:
            allowed.append(quota)
        torch.set_num_threads(max(1, min(allowed)))
    return torch.get_num_threads()


@dataclass
class Device:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    channels_last: bool
    compile: bool

    @classmethod
    def choose(cls, want: str, amp: bool, compile_model: bool) -> Device:
        cuda = torch.cuda.is_available() and want != "cpu"
        if want == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "device: cuda requested but CUDA is not available on this node; "
                "schedule the trial on a GPU node or set device: auto"
            )
        if not cuda:
            return cls(torch.device("cpu"), None, False, False)
        torch.backends.cudnn.benchmark = True
        dtype = None
        if amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cls(torch.device("cuda"), dtype, True, compile_model)

    def describe(self) -> str:
        if self.device.type != "cuda":
            return "cpu"
        name = torch.cuda.get_device_name(self.device)
        amp = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32"
        return f"cuda:{name}:{amp}" + (":compiled" if self.compile else "")


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        data: Splits,
        schedule: Schedule,
        device: Device,
        seed: int,
    ) -> None:
        self.cfg, self.schedule, self.dev, self.seed = cfg, schedule, device, seed
        dev = device.device
        torch.manual_seed(seed)
        self.model = Network(cfg, data.channels, data.num_classes).to(dev)
        if device.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward: Callable[[Tensor], Tensor] = (
            torch.compile(self.model) if device.compile else self.model
        )
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.learning_rate,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.momentum > 0,  # torch refuses Nesterov without momentum
        )
        self.scaler = torch.amp.GradScaler(enabled=device.amp_dtype == torch.float16)
        # the data set goes to the device once (pinned + non_blocking on CUDA)
        pin = dev.type == "cuda"

        def put(t: Tensor) -> Tensor:
            return (t.pin_memory() if pin else t).to(dev, non_blocking=True)

        self.train_x, self.train_y = put(data.train_x), put(data.train_y)
        self.val_x, self.val_y = put(data.val_x), put(data.val_y)
        self.test_x, self.test_y = put(data.test_x), put(data.test_y)
        self.augment = Augment(data.mean, data.std, cfg.length, dev)
        self.gen = torch.Generator(device=dev).manual_seed(seed + 1)
        self.np_rng = np.random.default_rng(seed + 2)
        n = int(self.train_x.shape[0])
        self.steps_per_epoch = steps_per_epoch(n, cfg.batch_size)
        self.batch = min(cfg.batch_size, n)
        self.progress = Progress()
        self.timer: StepTimer = CudaTimer() if dev.type == "cuda" else HostTimer()
        self._pending: list[tuple[Tensor, float]] = []  # (loss, lr) of the steps not yet read
        self._window = 1  # steps between flushes now (SYNC_EVERY, less near a seconds budget)
        self._slowest = self._mean = 0.0  # step times of the last steps read
        self._order: tuple[int, Tensor] | None = None  # (epoch, sample order)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        self.flush()  # the progress must match the model: a checkpoint is taken between steps
        cuda_rng = torch.cuda.get_rng_state_all() if self.dev.device.type == "cuda" else []
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "schedule": self.schedule.model_dump(),
            "progress": asdict(self.progress),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": cuda_rng,
                "data": self.gen.get_state(),
                "numpy": self.np_rng.bit_generator.state,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.schedule = Schedule.model_validate(state["schedule"])
        self.progress = Progress(**state["progress"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and self.dev.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.gen.set_state(rng["data"])
        self.np_rng.bit_generator.state = rng["numpy"]
        self._pending, self._slowest = [], 0.0  # unread steps belong to the state replaced
        self.timer.collect()

    # ------------------------------------------------------------------ steps

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.dev.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.dev.device.type, dtype=self.dev.amp_dtype)

    def _epoch_order(self, epoch: int) -> Tensor:
        if self._order is None or self._order[0] != epoch:  # train() may run in pieces
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(int(self.train_x.shape[0]), generator=g)
            self._order = (epoch, order.to(self.dev.device))
        return self._order[1]

    def _batch(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
        x = self.augment.train_batch(self.train_x[idx], self.gen)
        if self.dev.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return mixup(x, self.train_y[idx], self.cfg.alpha, self.gen, self.np_rng)

    def step(self, x: Tensor, y_a: Tensor, y_b: Tensor, lam: float) -> Tensor:
        """One optimiser step in training mode (``train`` sets it, ``error`` restores it); returns
        the (mixup) loss as a 0-d tensor."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.forward(x)
            loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def train(
        self,
        on_epoch_end: Callable[[Progress, float], None] | None = None,
        on_step: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Run until the schedule says the budget is used; callbacks see the progress.

        ``on_step`` runs after every step; the loss sum it sees, and on CUDA ``seconds``, are
        those of the last flush (at most SYNC_EVERY steps old). ``on_epoch_end`` sees them
        exact. A NaN/inf loss raises NonFiniteLossError at the flush that reads it.
        """
        p = self.progress
        lr = p.last_lr if p.last_lr is not None else self.schedule.lr(p.step, p.seconds)
        self.model.train()  # once, not per step: a walk over every module inside the timed step
        self._window = self._next_window()
        while not self.schedule.done(p.step, p.seconds):
            order = self._epoch_order(p.epoch)
            while p.step_in_epoch < self.steps_per_epoch:
                lo = p.step_in_epoch * self.batch
                x, y_a, y_b, lam = self._batch(order[lo : lo + self.batch])
                lr = self.schedule.lr(p.step, self._seconds_now())
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.timer.start()
                loss = self.step(x, y_a, y_b, lam)
                self.timer.stop()
                self._pending.append((loss.detach(), lr))
                p.last_lr = lr
                p.step += 1
                p.step_in_epoch += 1
                p.images += int(x.shape[0])
                p.epoch_loss_n += 1
                if len(self._pending) >= self._window:
                    self.flush()
                elif self.timer.exact:
                    self._add_times()  # free on the host clock: the budget is checked per step
                if on_step is not None:
                    on_step(p)
                if self.schedule.done(p.step, p.seconds):
                    break
            self.flush()
            if on_epoch_end is not None:
                on_epoch_end(p, lr)
            if p.step_in_epoch >= self.steps_per_epoch:
                p.epoch += 1
                p.step_in_epoch = 0
                p.epoch_loss_sum, p.epoch_loss_n = 0.0, 0
        return p

    def flush(self) -> None:
        """Read what the device computed since the last flush (one wait on CUDA): step times into
        ``seconds``, losses into the epoch's sum, in step order (the sum is the one a per-step
        read gives, bit for bit). A NaN/inf loss raises, naming its step and value."""
        self._add_times()
        pending, self._pending = self._pending, []
        self._window = self._next_window()
        if not pending:
            return
        p = self.progress
        first = p.step - len(pending) + 1
        values = torch.stack([loss for loss, _ in pending]).tolist()
        for i, (value, (_, lr)) in enumerate(zip(values, pending, strict=True)):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"training loss is {value} at step {first + i} (lr {lr:.4g}): "
                    "the config diverges"
                )
            p.epoch_loss_sum += value

    def _add_times(self) -> None:
        times = self.timer.collect()
        if not times:
            return
        p = self.progress
        for dt in times:  # one by one, as a per-step read adds them
            p.seconds += dt
        p.last_step_seconds = times[-1]
        self._slowest, self._mean = max(times), sum(times) / len(times)

    def _seconds_now(self) -> float:
        """Step seconds used so far, the unread steps (CUDA) estimated at the last mean: the
        SGDR-time learning rate is set from it."""
        unread = 0 if self.timer.exact else len(self._pending)
        return self.progress.seconds + unread * self._mean

    def _next_window(self) -> int:
        """Steps until the next flush. The seconds budget is checked at flushes only on CUDA, so
        there the window's steps, at SAFETY x the slowest step just read, must fit in the budget
        left; the last steps are read one by one. Nothing read yet (the first step, with
        compilation and cuDNN autotuning): one step."""
        if self.timer.exact or self.schedule.unit != "seconds":
            return SYNC_EVERY
        if self._slowest <= 0.0:
            return 1
        left = self.schedule.budget - self.progress.seconds
        return max(1, min(SYNC_EVERY, int(left / (SAFETY * self._slowest))))

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def error(self, part: str) -> float:
        """Top-1 error (fraction) on ``val`` or ``test``, without augmentation."""
        t0 = time.perf_counter()
        x_all, y_all = (self.val_x, self.val_y) if part == "val" else (self.test_x, self.test_y)
        self.model.eval()
        wrong = torch.zeros((), dtype=torch.long, device=self.dev.device)
        for lo in range(0, int(x_all.shape[0]), EVAL_BATCH):
            x = self.augment.normalise(x_all[lo : lo + EVAL_BATCH])
            if self.dev.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out = self.forward(x)
            wrong += (out.argmax(1) != y_all[lo : lo + EVAL_BATCH]).sum()
        self.model.train()
        self.progress.eval_seconds += time.perf_counter() - t0
        return float(wrong) / max(1, int(x_all.shape[0]))

    def epochs_done(self) -> float:
        return self.progress.step / self.steps_per_epoch
