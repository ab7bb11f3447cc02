"""Training-step speed: normlab's norms against torch.nn's, and normlab's Lightning path against a
plain loop.

    python scripts/bench_train.py [--table norms|overhead|all] [--device cpu|cuda|all]

norms (the headline): forward + backward + SGD step of the same model (cnn, resnet20; BN and GN
with G = 8) built once with torch.nn's norm layers and once with normlab's, on in-memory
tensors, eager. ms/step (best of `--repeats` interleaved runs, each the median of `--steps`
steps) and images/s; ratio = normlab / torch.nn. Goal on the CPU: ratio <= 1.15.
overhead: ResNet-20 (normlab BN) under normlab's Classifier + pl.Trainer (TensorBoard logger,
metrics, the divergence check; validation, checkpoints and statistics callbacks off) against
a plain loop with the same SGD and schedule: steps/s and the overhead. Goal: <= 10% at batch 32.
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
from torch import nn
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


def torch_norm(name: str):
    """torch.nn's twin of normlab's `name` layer (GN with 8 groups), as a norm factory."""
    if name == "batch":
        return lambda c, spatial_size=None: nn.BatchNorm2d(c)
    return lambda c, spatial_size=None: nn.GroupNorm(8, c)


def normlab_norm(name: str):
    return norm_factory(name, num_groups=8) if name == "group" else norm_factory(name)


def step_ms(model: nn.Module, batch: int, steps: int, device: str) -> float:
    """Median ms of forward + backward + SGD step, after 3 warmup steps."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def norms_table(device: str, steps: int, repeats: int) -> None:
    batches = (2, 32, 128, 512) if device == "cuda" else (2, 32, 128)
    print(f"\n## {device}: {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, eager")  # fmt: skip
    print("| model | batch | norm | torch.nn ms | normlab ms | ratio | torch.nn img/s "
          "| normlab img/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for model_name in ("cnn", "resnet20"):
        for batch in batches:
            for norm in ("batch", "group"):
                times = {"torch": [], "normlab": []}
                for _ in range(repeats):  # interleaved, so drift hits both sides alike
                    for side, factory in (("torch", torch_norm), ("normlab", normlab_norm)):
                        torch.manual_seed(0)
                        model = build_model(model_name, factory(norm)).to(device)
                        times[side].append(step_ms(model, batch, steps, device))
                ref, ours = min(times["torch"]), min(times["normlab"])
                print(f"| {model_name} | {batch} | {norm} | {ref:.2f} | {ours:.2f} | "
                      f"{ours / ref:.2f} | {batch / ref * 1e3:.0f} | {batch / ours * 1e3:.0f} |",
                      flush=True)  # fmt: skip


def overhead_table(devices: list[str], steps: int, repeats: int) -> None:
    print("\n| device | batch | plain steps/s | normlab steps/s | overhead |")
    print("|---|---|---|---|---|")
    for device in devices:
        for batch in (32, 2):
            plain, ours = [], []
            for _ in range(repeats):  # interleaved, so drift hits both sides alike
                plain.append(plain_loop(batch, steps, device))
                ours.append(framework(batch, steps, device))
            p, o = statistics.median(plain), statistics.median(ours)
            print(f"| {device} | {batch} | {p:.2f} | {o:.2f} | {100 * (p / o - 1):+.1f}% |",
                  flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=["norms", "overhead", "all"], default="norms")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("cuda: not available, skipped")
        devices.remove("cuda")
    if args.table in ("norms", "all"):
        for device in devices:
            norms_table(device, args.steps, args.repeats)
    if args.table in ("overhead", "all"):
        overhead_table(devices, 40, args.repeats)


if __name__ == "__main__":
    main()
