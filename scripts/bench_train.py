"""Training-step speed: normlab's norms against torch.nn's, eager and compiled, and normlab's
Lightning path against a plain loop.

    python scripts/bench_train.py [--table norms|overhead|all] [--device cpu|cuda|all]
        [--models cnn resnet20] [--batches 2 32 128] [--setups torch normlab compiled]
        [--precision fp32|bf16]

norms (the headline): forward + backward + SGD step of the same model (cnn, resnet20; BN and GN
with G = 8) on in-memory tensors, in three setups: torch.nn's norm layers, eager; normlab's,
eager; normlab's under compile=true (normlab.compile: inductor kernels on the CPU; on CUDA also
CUDA graphs, mode reduce-overhead). ms/step (best of `--repeats` runs, each the median of
`--steps` steps; eager setups interleaved) and images/s; ratios against torch.nn eager; the
compile column's first-step seconds. Goal on the CPU: normlab's default path <= 1.15x torch.nn.
bf16: under torch.autocast, as precision=bf16-mixed trains.
overhead: ResNet-20 with BN under normlab's Classifier + pl.Trainer (TensorBoard logger,
metrics, the divergence check; validation, checkpoints and statistics callbacks off), eager and
compiled, against a plain loop of the same model with torch.nn's BN: steps/s, and the speedup
over the plain loop (the GPU goal at batch 2: >= 4x).
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

from normlab.compile import compile_model
from normlab.models import build_model
from normlab.module import Classifier
from normlab.norms import norm_factory
from normlab.optim import LrSchedule, OptimSettings

OPTIM = OptimSettings(warmup_epochs=0)
WARMUP = 5


def make_loader(batch: int, steps: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    n = batch * (steps + WARMUP)
    data = TensorDataset(
        torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    )
    return DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)


def fresh_model(device: str, norms: str = "normlab"):
    torch.manual_seed(0)
    factory = torch_norm("batch") if norms == "torch" else norm_factory("batch")
    return build_model("resnet20", factory).to(device)


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
    """torch.nn's BN, eager, no framework: the baseline a user would write."""
    model, loader = fresh_model(device, "torch"), make_loader(batch, steps)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=0.1 * batch / 128,
        momentum=OPTIM.momentum,
        nesterov=OPTIM.nesterov,
        weight_decay=OPTIM.weight_decay,
    )
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


def framework(batch: int, steps: int, device: str, compiled: bool = False) -> float:
    module = Classifier(fresh_model(device), 10, 0.1 * batch / 128, OPTIM)
    if compiled:
        compile_model(module.model, device)
    loader = make_loader(batch, steps + (20 if compiled else 0))  # compiling: more warmup
    clock = Clock(len(loader))
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            accelerator="gpu" if device == "cuda" else "cpu",
            devices=1,
            precision="32-true",
            max_epochs=1,
            limit_val_batches=0,
            logger=TensorBoardLogger(logs, name="", version=""),
            callbacks=[StepClock(clock)],
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


def step_ms(model: nn.Module, batch: int, steps: int, device: str, bf16: bool = False) -> float:
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
        with torch.autocast(device, torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def seeded_model(name: str, factory, device: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, factory).to(device)


def norms_table(device: str, args) -> None:
    bf16 = args.precision == "bf16"
    batches = args.batches or ((2, 32, 128, 512) if device == "cuda" else (2, 32, 128))
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"\n## {device}: {name}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.precision}")  # fmt: skip
    columns = {"torch": "torch.nn eager", "normlab": "normlab eager", "compiled": "compiled"}
    setups = [s for s in columns if s in args.setups]
    head = " | ".join(f"{columns[s]} ms | {columns[s]} img/s" for s in setups)
    ratios = " | ".join(f"{s} / torch.nn" for s in setups if s != "torch")
    extra = " | compile s" if "compiled" in setups else ""
    print(f"| model | batch | norm | {head} | {ratios}{extra} |")
    print("|---" * (3 + 2 * len(setups) + len(setups) - 1 + bool(extra)) + "|")
    for model_name in args.models:
        for batch in batches:
            for norm in ("batch", "group"):
                times = {s: [] for s in setups}

                for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
                    for side, factory in (("torch", torch_norm), ("normlab", normlab_norm)):
                        if side in setups:
                            model = seeded_model(model_name, factory(norm), device)
                            times[side].append(step_ms(model, batch, args.steps, device, bf16))
                compile_s = None
                if "compiled" in setups:
                    model = seeded_model(model_name, normlab_norm(norm), device)
                    compile_model(model, device)
                    start = time.perf_counter()
                    step_ms(model, batch, 1, device, bf16)  # compiles and warms up
                    compile_s = time.perf_counter() - start
                    for _ in range(args.repeats):
                        times["compiled"].append(step_ms(model, batch, args.steps, device, bf16))
                best = {s: min(t) for s, t in times.items()}
                cells = " | ".join(f"{best[s]:.2f} | {batch / best[s] * 1e3:.0f}" for s in setups)
                ref = best.get("torch")
                rel = " | ".join(f"{best[s] / ref:.2f}" if ref else "–"
                                 for s in setups if s != "torch")  # fmt: skip
                tail = f" | {compile_s:.1f}" if compile_s is not None else ""
                print(f"| {model_name} | {batch} | {norm} | {cells} | {rel}{tail} |", flush=True)


def overhead_table(devices: list[str], steps: int, repeats: int, batches) -> None:
    print("\n| device | batch | plain torch.nn steps/s | normlab eager steps/s | overhead "
          "| normlab compiled steps/s | compiled / plain |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for device in devices:
        for batch in batches or (32, 2):
            plain, ours = [], []
            for _ in range(repeats):  # interleaved, so drift hits both sides alike
                plain.append(plain_loop(batch, steps, device))
                ours.append(framework(batch, steps, device))
            compiled = statistics.median(
                framework(batch, steps, device, compiled=True) for _ in range(repeats)
            )
            p, o = statistics.median(plain), statistics.median(ours)
            print(f"| {device} | {batch} | {p:.2f} | {o:.2f} | {100 * (p / o - 1):+.1f}% "
                  f"| {compiled:.2f} | {compiled / p:.2f}x |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=["norms", "overhead", "all"], default="norms")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["cnn", "resnet20"])
    parser.add_argument("--batches", nargs="+", type=int)
    parser.add_argument("--setups", nargs="+", default=["torch", "normlab", "compiled"])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("cuda: not available, skipped")
        devices.remove("cuda")
    if args.table in ("norms", "all"):
        for device in devices:
            norms_table(device, args)
    if args.table in ("overhead", "all"):
        overhead_table(devices, 40, args.repeats, args.batches)


if __name__ == "__main__":
    main()
