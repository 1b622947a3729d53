"""Trainer loop vs a plain hand-written PyTorch loop: images/s on the same network and data.

Both sides train the same Zela et al. network (fresh, same seed) with SGD + Nesterov on the same
synthetic CIFAR-shaped data, with the same batched augmentation (crop, flip, Cutout, mixup), the
same precision, memory format and compilation. The plain loop is what one would write by hand:
slice a permutation, augment, forward, backward, step. The trainer's loop
(trainer.train.Trainer.train) adds what the budget protocol needs: the per-step learning-rate
schedule, step timing (host clock on CPU, CUDA events on a GPU), the NaN/inf check of every loss
(read every SYNC_EVERY steps), progress bookkeeping and the per-step checkpoint-interval callback.
Evaluation is excluded on both sides.

The two loops run in alternating short blocks of steps (plain, trainer, trainer, plain, ...) in
one process, so background load on a shared box hits both alike. Each side's images/s is a mean
over its blocks with a 95 % t-interval; the overhead is the mean over blocks of trainer / plain
time - 1, with its t-interval. On CPU the time is process CPU time (one torch thread), which
other processes barely affect; on CUDA wall time, synchronised at the edges of each block.
"counted" is the trainer's budget seconds (its step times) per second of its wall time.

    python -m benchmarks.trainer [--blocks 12] [--block-steps N] [--threads 1] [--device D]
        [--wide] [--matrix | --amp on|off|both --channels-last ... --compile ...]

GPU mode: ``--device cuda --wide --matrix`` runs Shake-Shake 26 2x32d (batch 128) in every
combination of AMP (bf16 where supported, else fp16 with a GradScaler on both sides),
channels_last and torch.compile (both loops compiled), eager rows first, one row each.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import platform
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor

from trainer.augment import mixup
from trainer.contract import DataSource
from trainer.data import Splits, load
from trainer.hparams import TrainConfig
from trainer.model import Network, count_params
from trainer.schedule import Schedule
from trainer.train import Device, Progress, Trainer

# small enough for a loaded 2-core CI box; --wide for the Shake-Shake 26 2x32d default point
CONFIG = TrainConfig(
    nr_residual_blocks_1=1,
    nr_residual_blocks_2=1,
    nr_residual_blocks_3=1,
    initial_filters=8,
    widen_factor_1=2.0,
    widen_factor_2=2.0,
    widen_factor_3=2.0,
    res_branches_1=2,
    res_branches_2=2,
    res_branches_3=1,
    batch_size=32,
    learning_rate=0.05,
)
WIDE = TrainConfig(batch_size=128)  # the defaults are Shake-Shake 26 2x32d
WARMUP = {"cpu": 3, "cuda": 10}  # steps per side before timing (compilation, cuDNN autotuning)
BLOCK_STEPS = {"cpu": 5, "cuda": 20}


class PlainLoop:
    """The hand-written loop, run `k` steps at a time over the trainer's on-device data."""

    def __init__(self, cfg: TrainConfig, trainer: Trainer) -> None:
        self.cfg, self.t = cfg, trainer
        dev = trainer.dev.device
        torch.manual_seed(0)
        self.model = Network(cfg, trainer.train_x.shape[1]).to(dev)
        if trainer.dev.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if trainer.dev.compile else self.model
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.learning_rate,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=True,
        )
        fp16 = trainer.dev.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(dev.type) if fp16 else None  # as by hand: fp16 only
        self.g = torch.Generator(device=dev).manual_seed(1)
        self.order = torch.randperm(int(trainer.train_x.shape[0]), device=dev)
        self.i = 0

    def run(self, k: int) -> None:
        t, cfg, bs = self.t, self.cfg, self.cfg.batch_size
        n = int(t.train_x.shape[0])
        for _ in range(k):
            lo = (self.i * bs) % (n - bs + 1)
            self.i += 1
            idx = self.order[lo : lo + bs]
            x = t.augment.train_batch(t.train_x[idx], self.g)  # the same batched augmentation
            if t.dev.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x, y_a, y_b, lam = mixup(x, t.train_y[idx], cfg.alpha, self.g, t.np_rng)
            self.opt.zero_grad(set_to_none=True)
            with t._autocast():  # the same precision as the trainer
                out: Tensor = self.forward(x)
                loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
            if self.scaler is None:
                loss.backward()
                self.opt.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()


class TrainerLoop:
    """Trainer.train, extended by `k` steps per call, with the runner's per-step callback."""

    def __init__(self, cfg: TrainConfig, trainer: Trainer) -> None:
        self.cfg, self.t, self.last_ckpt = cfg, trainer, 0.0

    def on_step(self, p: Progress) -> None:  # what trainer.run does every step, minus the I/O
        if p.seconds - self.last_ckpt >= 300.0:
            self.last_ckpt = p.seconds

    def run(self, k: int) -> None:
        # a cosine over a long horizon, so the LR stays in the normal range while benchmarking
        self.t.schedule = Schedule(
            unit="epochs",
            base_lr=self.cfg.learning_rate,
            budget=1.0,
            total_steps=self.t.progress.step + k,
        )
        self.t.train(on_step=self.on_step)


def timed(loop: PlainLoop | TrainerLoop, k: int, dev: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds of k steps of a loop."""
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    loop.run(k)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def interval(xs: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval."""
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, math.nan
    t = float(stats.t.ppf(0.975, len(xs) - 1))
    return mean, t * statistics.stdev(xs) / math.sqrt(len(xs))


@dataclass
class Row:
    device: Device
    plain: list[float]  # seconds per block (CPU time on CPU, wall on CUDA)
    trainer: list[float]
    counted: float  # trainer budget seconds per wall second
    setup_s: float  # building both loops and the warm-up steps (compilation included)
    peak_mib: float | None

    def name(self) -> str:
        d = self.device
        amp = str(d.amp_dtype).replace("torch.", "") if d.amp_dtype else "fp32"
        fmt = "channels_last" if d.channels_last else "NCHW"
        return f"{amp} {fmt} {'compiled' if d.compile else 'eager'}"


def measure(cfg: TrainConfig, data: Splits, device: Device, blocks: int, k: int) -> Row:
    dev = device.device
    if device.compile:
        torch._dynamo.reset()  # a fresh cache per row: the recompile limit is per code object
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    schedule = Schedule.create("epochs", cfg.learning_rate, 1.0, 1)
    plain = PlainLoop(cfg, Trainer(cfg, data, schedule, device, seed=0))
    ours = TrainerLoop(cfg, Trainer(cfg, data, schedule, device, seed=0))
    timed(plain, WARMUP[dev.type], dev)
    timed(ours, WARMUP[dev.type], dev)
    setup = time.perf_counter() - start
    clock = 1 if dev.type == "cpu" else 0
    sides: dict[str, list[float]] = {"plain": [], "trainer": []}
    counted = wall = 0.0
    for b in range(blocks):
        order: list[tuple[str, PlainLoop | TrainerLoop]] = [("plain", plain), ("trainer", ours)]
        for name, loop in order if b % 2 == 0 else order[::-1]:
            before = ours.t.progress.seconds
            times = timed(loop, k, dev)
            sides[name].append(times[clock])
            if name == "trainer":
                counted += ours.t.progress.seconds - before
                wall += times[0]
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return Row(device, sides["plain"], sides["trainer"], counted / wall, setup, peak)


def report(row: Row, images: int) -> str:
    plain, plain_ci = interval([images / s for s in row.plain])
    ours, ours_ci = interval([images / s for s in row.trainer])
    pairs = zip(row.trainer, row.plain, strict=True)  # the two sides of one block
    over, over_ci = interval([(t / p - 1) * 100 for t, p in pairs])
    totals = (sum(row.trainer) / sum(row.plain) - 1) * 100
    peak = f"{row.peak_mib:.0f}" if row.peak_mib is not None else "-"
    return (
        f"{row.name():<30}{plain:>10.1f} ±{plain_ci:<7.1f}{ours:>10.1f} ±{ours_ci:<7.1f}"
        f"{over:>+7.1f} % [{over - over_ci:+.1f}, {over + over_ci:+.1f}]{totals:>+9.1f} %"
        f"{row.counted:>9.2f}{peak:>9}{row.setup_s:>8.1f}"
    )


def axis(value: str | None, default: bool) -> list[bool]:
    """The settings of one axis, the trials' default first (so eager rows come first)."""
    if value is None:
        return [default]
    return {"on": [True], "off": [False], "both": [default, not default]}[value]


def variants(args: argparse.Namespace, kind: str) -> list[Device]:
    cuda = kind == "cuda"
    if args.matrix:
        args.amp = args.channels_last = args.compile = "both"
    amps = [False] if args.no_amp else axis(args.amp, cuda)  # the trainer's defaults on CUDA
    half = torch.bfloat16 if not cuda or torch.cuda.is_bf16_supported() else torch.float16
    return [
        Device(torch.device(kind), half if amp else None, channels_last, compiled)
        for compiled, amp, channels_last in itertools.product(
            axis(args.compile, False), amps, axis(args.channels_last, cuda)
        )
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trainer", description=__doc__)
    parser.add_argument("--blocks", type=int, default=12, help="timed blocks per side")
    parser.add_argument("--block-steps", type=int, help="steps per block (5 CPU, 20 CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--wide", action="store_true", help="Shake-Shake 26 2x32d, batch 128")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--no-amp", action="store_true", help="full precision (= --amp off)")
    for name in ("amp", "channels-last", "compile"):
        parser.add_argument(f"--{name}", choices=["on", "off", "both"], help="default: as trials")
    parser.add_argument("--matrix", action="store_true", help="all three axes both ways")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kind = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and kind != "cuda":
        parser.error("--device cuda: CUDA is not available on this machine")
    torch.backends.cudnn.benchmark = kind == "cuda"  # as Device.choose
    cfg = WIDE if args.wide else CONFIG
    k = args.block_steps or BLOCK_STEPS[kind]
    data = load("synthetic", DataSource())
    gpu = f", {torch.cuda.get_device_name()}" if kind == "cuda" else ""
    print(
        f"host: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, device {kind}{gpu}"
    )
    print(
        f"network: {count_params(Network(cfg))} params, batch {cfg.batch_size}, "
        f"{args.blocks} alternating blocks of {k} steps per side; "
        f"clock: {'process CPU time' if kind == 'cpu' else 'wall time'}"
    )
    print(
        f"{'variant':<30}{'plain img/s':>18}{'trainer img/s':>18}{'overhead [95 % CI]':>26}"
        f"{'totals':>11}{'counted':>9}{'peak MiB':>9}{'setup s':>8}",
        flush=True,
    )
    for device in variants(args, kind):
        row = measure(cfg, data, device, args.blocks, k)
        print(report(row, k * cfg.batch_size), flush=True)
        del row
        gc.collect()
        if kind == "cuda":
            torch.cuda.empty_cache()
    print("target: trainer overhead <= 5 %")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
