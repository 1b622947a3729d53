"""Trainer loop vs a plain hand-written PyTorch loop: images/s on the same network and data.

Both sides train the same Zela et al. network (fresh, same seed) with SGD + Nesterov on the same
synthetic CIFAR-shaped data, with the same batched augmentation (crop, flip, Cutout, mixup), for
the same number of steps. The plain loop is what one would write by hand: slice a permutation,
augment, forward, backward, step. The trainer's loop (trainer.train.Trainer.train) adds what the
budget protocol needs: the per-step learning-rate schedule, step timing (with CUDA synchronised),
the NaN/inf check on every loss, progress bookkeeping and the per-step checkpoint-interval
callback. Evaluation is excluded on both sides. Rounds alternate (plain, trainer, plain, ...) so
that background load hits both alike; the best round of each side is compared. On CPU the
overhead is judged on process CPU time (one torch thread), which other processes' load on a
shared box barely affects; on CUDA on wall time.

    python -m benchmarks.trainer [--steps 20] [--rounds 3] [--threads 1] [--device D] [--wide]
"""

from __future__ import annotations

import argparse
import platform
import statistics
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


class Clock:
    """Wall time and this process's CPU time. On a shared CPU box the CPU time (one torch thread)
    is barely touched by other processes' load, so the overhead is judged on it; on CUDA, wall."""

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, images: int) -> tuple[float, float]:
        """(images per wall second, images per CPU second) since start()."""
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return images / wall, images / cpu


def plain_loop(cfg: TrainConfig, trainer: Trainer, steps: int) -> tuple[float, float]:
    """Images/s of a hand-written loop over the trainer's on-device data (after warm-up)."""
    dev = trainer.dev.device
    torch.manual_seed(0)
    model = Network(cfg, trainer.train_x.shape[1]).to(dev)
    if trainer.dev.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg.learning_rate,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=True,
    )
    augment = trainer.augment  # the same batched augmentation (stateless)
    g = torch.Generator(device=dev).manual_seed(1)
    rng = trainer.np_rng
    n, bs = int(trainer.train_x.shape[0]), cfg.batch_size
    order = torch.randperm(n, device=dev)
    autocast = trainer._autocast  # the same precision as the trainer
    clock = Clock(dev)
    for i in range(WARMUP + steps):
        if i == WARMUP:
            clock.start()
        lo = (i * bs) % (n - bs + 1)
        idx = order[lo : lo + bs]
        x = augment.train_batch(trainer.train_x[idx], g)
        if trainer.dev.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x, y_a, y_b, lam = mixup(x, trainer.train_y[idx], cfg.alpha, g, rng)
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
            loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
        loss.backward()
        opt.step()
    return clock.rates(steps * bs)


def trainer_loop(cfg: TrainConfig, trainer: Trainer, steps: int) -> tuple[float, float]:
    """Images/s of Trainer.train for `steps` steps (after warm-up), with the runner's callback."""
    last_ckpt = 0.0

    def on_step(p: Progress) -> None:  # what trainer.run does every step, minus the I/O
        nonlocal last_ckpt
        if p.seconds - last_ckpt >= 300.0:
            last_ckpt = p.seconds

    trainer.schedule = Schedule(
        unit="epochs", base_lr=cfg.learning_rate, budget=1.0, total_steps=WARMUP
    )
    trainer.train(on_step=on_step)
    trainer.schedule = Schedule(
        unit="epochs", base_lr=cfg.learning_rate, budget=1.0, total_steps=WARMUP + steps
    )
    clock = Clock(trainer.dev.device)
    clock.start()
    trainer.train(on_step=on_step)
    return clock.rates(steps * cfg.batch_size)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trainer", description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
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
    print(
        f"network: {count_params(Network(cfg))} params, batch {cfg.batch_size}, "
        f"{args.steps} timed steps x {args.rounds} rounds (best round reported)"
    )
    by_cpu = device.device.type == "cpu"
    plain: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    for r in range(args.rounds):
        schedule = Schedule.create("epochs", cfg.learning_rate, 1.0, 1)
        trainer = Trainer(cfg, data, schedule, device, seed=0)
        plain.append(plain_loop(cfg, trainer, args.steps))
        trainer = Trainer(cfg, data, schedule, device, seed=0)
        ours.append(trainer_loop(cfg, trainer, args.steps))
        print(
            f"round {r + 1}: plain {plain[-1][0]:8.1f} img/s wall {plain[-1][1]:8.1f} img/s CPU"
            f"   trainer {ours[-1][0]:8.1f} img/s wall {ours[-1][1]:8.1f} img/s CPU"
        )
    best = [max(v[i] for v in side) for side in (plain, ours) for i in (0, 1)]
    print(f"{'loop':<10}{'img/s wall':>14}{'img/s CPU':>14}")
    print(f"{'plain':<10}{best[0]:>14.1f}{best[1]:>14.1f}")
    print(f"{'trainer':<10}{best[2]:>14.1f}{best[3]:>14.1f}")
    i = 1 if by_cpu else 0
    overhead = (best[2 * 0 + i] / best[2 + i] - 1) * 100
    median = statistics.median(v[i] for v in plain) / statistics.median(v[i] for v in ours) - 1
    clock = "CPU time" if by_cpu else "wall time"
    print(
        f"trainer overhead ({clock}): {overhead:+.1f} % best rounds, {median * 100:+.1f} % "
        "median rounds (target <= 5 %)"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
