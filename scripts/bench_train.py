"""Training steps per second: normlab's Lightning path against a plain PyTorch loop.

    python scripts/bench_train.py [--device cpu|cuda|all] [--steps 40] [--repeats 3]

Both sides train the same ResNet-20 (normlab BatchNorm) from the same seed on the same in-memory
data with the same SGD + warmup/cosine schedule. The framework side is normlab's Classifier under
a pl.Trainer with the TensorBoard logger, metrics and logging on and the divergence check that
every run has; validation, checkpoints and the statistics callbacks off. Prints steps/s for each
(median of repeats, after warmup steps; the GPU is synchronized only where the clock is read)
and the framework overhead.
Goal: overhead <= 10% at batch 32.
"""

import argparse
import logging
import statistics
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from normlab.callbacks.divergence import StopOnDivergence
from normlab.models import build_model
from normlab.module import Classifier, LrSchedule
from normlab.norms import norm_factory

OPTIM = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "warmup_epochs": 0}
WARMUP = 5


def make_loader(batch: int, steps: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    n = batch * (steps + WARMUP)
    data = TensorDataset(
        torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    )
    return DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)


def fresh_model(device: str):
    torch.manual_seed(0)
    return build_model("resnet20", norm_factory("batch")).to(device)


class Clock:
    """Steps per second after WARMUP steps. The GPU is synchronized only where the clock is
    read (after the warmup and after the last step), so the host runs ahead as in training."""

    def __init__(self, total_steps: int):
        self.total, self.done, self.start, self.end = total_steps, 0, None, None

    def tick(self, device: str) -> None:
        self.done += 1
        if self.done in (WARMUP, self.total):
            if device == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            self.start, self.end = (now, None) if self.done == WARMUP else (self.start, now)

    def steps_per_second(self) -> float:
        return (self.total - WARMUP) / (self.end - self.start)


def plain_loop(batch: int, steps: int, device: str) -> float:
    model, loader = fresh_model(device), make_loader(batch, steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1 * batch / 128, **{
        k: OPTIM[k] for k in ("momentum", "nesterov", "weight_decay")})  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LrSchedule(len(loader)))
    model.train()
    clock = Clock(len(loader))
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        clock.tick(device)
    return clock.steps_per_second()


class StepClock(pl.Callback):
    def __init__(self, clock: Clock):
        self.clock = clock

    def on_train_batch_end(self, trainer, *args) -> None:
        self.clock.tick(trainer.strategy.root_device.type)


def framework(batch: int, steps: int, device: str, module_class=Classifier) -> float:
    module = module_class(fresh_model(device), 10, 0.1 * batch / 128, OPTIM)
    loader = make_loader(batch, steps)
    clock = Clock(len(loader))
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            accelerator="gpu" if device == "cuda" else "cpu",
            devices=1,
            precision="32-true",
            max_epochs=1,
            limit_val_batches=0,
            logger=TensorBoardLogger(logs, name="", version=""),
            callbacks=[StopOnDivergence(), StepClock(clock)],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=50,
        )
        trainer.fit(module, train_dataloaders=loader)
    return clock.steps_per_second()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    print("| device | batch | plain steps/s | normlab steps/s | overhead |")
    print("|---|---|---|---|---|")
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("| cuda | - | not available | - | - |")
            continue
        for batch in (32, 2):
            plain, ours = [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
                plain.append(plain_loop(batch, args.steps, device))
                ours.append(framework(batch, args.steps, device))
            p, o = statistics.median(plain), statistics.median(ours)
            print(f"| {device} | {batch} | {p:.2f} | {o:.2f} | {100 * (p / o - 1):+.1f}% |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
