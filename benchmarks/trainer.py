"""Trainer loop vs a plain hand-written PyTorch loop: images/s on the same network and data.

Both sides train the same Zela et al. network (fresh, same seed) with SGD + Nesterov on the same
synthetic CIFAR-shaped data, with the same batched augmentation (crop, flip, Cutout, mixup). The
plain loop is what one would write by hand: slice a permutation, augment, forward, backward,
step. The trainer's loop (trainer.train.Trainer.train) adds what the budget protocol needs: the
per-step learning-rate schedule, step timing (with CUDA synchronised), the NaN/inf check on every
loss, progress bookkeeping and the per-step checkpoint-interval callback. Evaluation is excluded
on both sides.

The two loops run in alternating short blocks of steps (plain, trainer, trainer, plain, ...) in
one process, so background load on a shared box hits both alike; each side's time is summed over
its blocks. On CPU the overhead is judged on process CPU time (one torch thread), which other
processes barely affect; on CUDA on wall time.

    python -m benchmarks.trainer [--blocks 12] [--block-steps 5] [--threads 1] [--device D]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from trainer.augment import mixup
from trainer.contract import DataSource
from trainer.data import load
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
WARMUP = 3


class PlainLoop:
    """The hand-written loop, run `k` steps at a time over the trainer's on-device data."""

    def __init__(self, cfg: TrainConfig, trainer: Trainer) -> None:
        self.cfg, self.t = cfg, trainer
        dev = trainer.dev.device
        torch.manual_seed(0)
        self.model = Network(cfg, trainer.train_x.shape[1]).to(dev)
        if trainer.dev.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.learning_rate,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=True,
        )
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
                out = self.model(x)
                loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
            loss.backward()
            self.opt.step()


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trainer", description=__doc__)
    parser.add_argument("--blocks", type=int, default=12, help="timed blocks per side")
    parser.add_argument("--block-steps", type=int, default=5, help="steps per block")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--wide", action="store_true", help="Shake-Shake 26 2x32d, batch 128")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(batch_size=128) if args.wide else CONFIG
    data = load("synthetic", DataSource())
    device = Device.choose(args.device, amp=not args.no_amp, compile_model=False)
    print(
        f"host: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, device {device.describe()}"
    )
    k = args.block_steps
    print(
        f"network: {count_params(Network(cfg))} params, batch {cfg.batch_size}, "
        f"{args.blocks} alternating blocks of {k} steps per side"
    )
    schedule = Schedule.create("epochs", cfg.learning_rate, 1.0, 1)
    plain = PlainLoop(cfg, Trainer(cfg, data, schedule, device, seed=0))
    ours = TrainerLoop(cfg, Trainer(cfg, data, schedule, device, seed=0))
    dev = device.device
    timed(plain, WARMUP, dev)
    timed(ours, WARMUP, dev)
    totals = {"plain": [0.0, 0.0], "trainer": [0.0, 0.0]}
    for b in range(args.blocks):
        order: list[tuple[str, PlainLoop | TrainerLoop]] = [("plain", plain), ("trainer", ours)]
        for name, loop in order if b % 2 == 0 else order[::-1]:
            wall, cpu = timed(loop, k, dev)
            totals[name][0] += wall
            totals[name][1] += cpu
    images = args.blocks * k * cfg.batch_size
    print(f"{'loop':<10}{'img/s wall':>14}{'img/s CPU':>14}")
    for name, (wall, cpu) in totals.items():
        print(f"{name:<10}{images / wall:>14.1f}{images / cpu:>14.1f}")
    i = 1 if dev.type == "cpu" else 0
    overhead = (totals["trainer"][i] / totals["plain"][i] - 1) * 100
    clock = "CPU time" if i else "wall time"
    print(f"trainer overhead ({clock}): {overhead:+.1f} % (target <= 5 %)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
