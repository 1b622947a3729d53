"""The trainer loop's GPU path checked on a GPU in one run, then the loop benchmark's GPU matrix.

    python -m benchmarks.gpu_check                           # a CUDA machine: about 5 minutes
    python -m benchmarks.gpu_check --device cpu --no-matrix  # the same checks on the host clock

Checks (exit 1 if one fails), on synthetic CIFAR-shaped data, AMP and channels_last as trials get
them on the device:

1. host syncs: 3 epochs of an epochs budget under ``torch.cuda.set_sync_debug_mode("warn")``,
   counting every synchronising call torch flags (``.tolist()``/``.item()``, blocking copies): at
   most one per flush and one per epoch (the copy of its sample order), never one per step. Not
   flagged by torch: ``Event.synchronize`` (the flush waits on it right after a flagged read).
2. step-time precision: Shake-Shake 26 2x32d timed by the trainer's CUDA events and by the
   previous method (synchronise, host clock, synchronise, around each step): mean step time of
   each, their ratio, and the events' sum against the wall time of the same steps.
3. seconds budget: stops at the first step whose time reaches the budget (the step times the
   trainer read, summed), and reads the device far less than once per step.
4. NaN: a NaN loss injected at step 5 raises NonFiniteLossError naming step 5, at most
   SYNC_EVERY - 1 steps later.

Then ``python -m benchmarks.trainer --device cuda --wide --matrix`` (unless --no-matrix).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmarks import trainer as loop_bench
from trainer.contract import DataSource
from trainer.data import Splits, load
from trainer.hparams import TrainConfig
from trainer.schedule import Schedule
from trainer.steptime import HostTimer
from trainer.train import SYNC_EVERY, Device, NonFiniteLossError, Trainer, steps_per_epoch


class SyncedTimer(HostTimer):
    """The previous method: synchronise, host clock, synchronise, around each step."""

    def start(self) -> None:
        torch.cuda.synchronize()
        super().start()

    def stop(self) -> None:
        torch.cuda.synchronize()
        super().stop()


def build(cfg: TrainConfig, data: Splits, device: Device, unit: str, budget: float) -> Trainer:
    spe = steps_per_epoch(len(data.train_y), cfg.batch_size)
    schedule = Schedule.create(unit, cfg.learning_rate, budget, spe)  # type: ignore[arg-type]
    return Trainer(cfg, data, schedule, device, seed=0)


def run_steps(trainer: Trainer, k: int) -> None:
    p = trainer.progress
    trainer.schedule = Schedule(unit="epochs", base_lr=0.05, budget=1.0, total_steps=p.step + k)
    trainer.train()


def wrap(obj: Any, name: str, after: Callable[[Any], None]) -> None:
    """Make ``obj.name(...)`` call ``after`` with what the real method returned."""
    real = getattr(obj, name)

    def wrapped(*args: Any) -> Any:
        out = real(*args)
        after(out)
        return out

    setattr(obj, name, wrapped)


def check_syncs(data: Splits, device: Device) -> tuple[bool | None, str]:
    if device.device.type != "cuda":
        return None, "no device to wait for on CPU"
    cfg = loop_bench.CONFIG.model_copy(update={"batch_size": 128})
    trainer = build(cfg, data, device, "epochs", 3.0)
    run_steps(trainer, 3)  # cuDNN autotuning and first-call work outside the count
    trainer.schedule = Schedule.create("epochs", cfg.learning_rate, 3.0, trainer.steps_per_epoch)
    flushes = [0]
    wrap(trainer, "flush", lambda _: flushes.__setitem__(0, flushes[0] + 1))
    before = trainer.progress.step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            p = trainer.train()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    steps, epochs = p.step - before, p.epoch + 1
    ok = syncs <= flushes[0] + epochs and syncs * 4 < steps
    return ok, f"{syncs} syncs in {steps} steps ({flushes[0]} flushes, {epochs} epochs)"


def check_precision(data: Splits, device: Device) -> tuple[bool | None, str]:
    if device.device.type != "cuda":
        return None, "the host clock is the only clock on CPU"
    trainer = build(loop_bench.WIDE, data, device, "epochs", 1.0)
    # Warm-up past the first epoch's end, so that one-off work of the first epoch falls in no
    # timed phase; then the phases in ABBA order, so that a drift (clocks, allocator, the
    # first run of a code path) weighs on both methods alike.
    run_steps(trainer, steps_per_epoch(len(data.train_y), loop_bench.WIDE.batch_size) + 8)
    events = trainer.timer
    sums = {"events": 0.0, "synced": 0.0}
    walls = {"events": 0.0, "synced": 0.0}
    for name in ("events", "synced", "synced", "events"):
        trainer.timer = events if name == "events" else SyncedTimer()
        before = trainer.progress.seconds
        torch.cuda.synchronize()
        wall = time.perf_counter()
        run_steps(trainer, 32)
        torch.cuda.synchronize()
        walls[name] += time.perf_counter() - wall
        sums[name] += trainer.progress.seconds - before
    ratio = sums["events"] / sums["synced"]
    share = sums["events"] / walls["events"]
    ok = 0.5 < ratio <= 1.05 and share <= 1.001
    return ok, (
        f"mean step {sums['events'] / 64 * 1e3:.3f} ms by events, "
        f"{sums['synced'] / 64 * 1e3:.3f} ms synced (ratio {ratio:.3f}); "
        f"events cover {share:.1%} of the wall time, synced {walls['synced'] / 64 * 1e3:.3f} "
        "ms of wall time per step"
    )


def check_seconds_budget(data: Splits, device: Device, budget: float) -> tuple[bool | None, str]:
    trainer = build(loop_bench.CONFIG, data, device, "seconds", budget)
    times: list[float] = []
    flushes = [0]
    wrap(trainer.timer, "collect", times.extend)
    wrap(trainer, "flush", lambda _: flushes.__setitem__(0, flushes[0] + 1))
    p = trainer.train()
    total, crossed = 0.0, 0
    for i, dt in enumerate(times):
        total += dt
        if total >= budget:
            crossed = i + 1
            break
    ok = crossed == p.step == len(times) and budget <= p.seconds < budget + p.last_step_seconds
    return ok, (
        f"{p.step} steps, {p.seconds:.4f} s counted for a {budget} s budget "
        f"(last step {p.last_step_seconds * 1e3:.2f} ms), budget reached at step {crossed}; "
        f"{flushes[0]} flushes"
    )


def check_nan(data: Splits, device: Device) -> tuple[bool | None, str]:
    trainer = build(loop_bench.CONFIG, data, device, "epochs", 1.0)
    real = trainer.step
    calls = [0]

    def step(x: Tensor, y_a: Tensor, y_b: Tensor, lam: float) -> Tensor:
        loss = real(x, y_a, y_b, lam)
        calls[0] += 1
        return torch.full_like(loss, float("nan")) if calls[0] >= 5 else loss

    trainer.step = step  # type: ignore[method-assign]
    try:
        trainer.train()
    except NonFiniteLossError as exc:
        late = trainer.progress.step - 5
        ok = "nan at step 5" in str(exc) and late < SYNC_EVERY
        return ok, f"{exc} (raised {late} steps later)"
    return False, "no NonFiniteLossError"


CHECKS = {
    "syncs": "host syncs",
    "precision": "step-time precision",
    "budget": "seconds budget",
    "nan": "NaN loss",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--budget", type=float, default=5.0, help="seconds budget of check 3")
    parser.add_argument("--no-matrix", action="store_true", help="the checks only")
    parser.add_argument("--only", nargs="*", choices=list(CHECKS), help="these checks alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = Device.choose(args.device, amp=True, compile_model=False)
    print(f"device {device.describe()}, torch {torch.__version__}, SYNC_EVERY {SYNC_EVERY}")
    data = load("synthetic", DataSource())
    checks: dict[str, Callable[[], tuple[bool | None, str]]] = {
        "syncs": lambda: check_syncs(data, device),
        "precision": lambda: check_precision(data, device),
        "budget": lambda: check_seconds_budget(data, device, args.budget),
        "nan": lambda: check_nan(data, device),
    }
    failed = 0
    for key in args.only or CHECKS:
        name, ok, detail = CHECKS[key], *checks[key]()
        failed += ok is False
        print(f"{({True: 'PASS', False: 'FAIL', None: 'SKIP'})[ok]} {name}: {detail}", flush=True)
    if not args.no_matrix:
        loop_bench.main(["--device", args.device, "--wide", "--matrix"])
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
