"""The optimizer: SGD with linear warmup and a schedule, its settings and the lr rule."""

import math
from dataclasses import dataclass, field
from enum import Enum

import torch

from normlab.errors import require


class Schedule(Enum):
    """The lr after warmup: cosine decay to 0, step decay at milestones, or constant."""

    cosine = "cosine"
    step = "step"
    constant = "constant"


class LrScaling(Enum):
    """linear: lr = base_lr * SGD batch / base_batch_size (the GN paper's rule); none: base_lr."""

    linear = "linear"
    none = "none"


@dataclass
class OptimSettings:
    """SGD's settings (Hydra group `optim`); refused on construction when out of range."""

    name: str = "sgd"
    base_lr: float = 0.1
    base_batch_size: int = 128
    lr_scaling: LrScaling = LrScaling.linear
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Schedule = Schedule.cosine
    warmup_epochs: float = 1.0
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # schedule=step
    gamma: float = 0.1

    def __post_init__(self):
        def need(ok: bool, key: str, allowed: str) -> None:
            require(ok, f"optim.{key}", getattr(self, key), allowed)

        need(self.name == "sgd", "name", "sgd")
        need(self.base_lr >= 0, "base_lr", "a number >= 0")
        need(self.base_batch_size >= 1, "base_batch_size", "an integer >= 1")
        need(0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        need(not self.nesterov or self.momentum > 0, "nesterov", "false when momentum is 0")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(self.warmup_epochs >= 0, "warmup_epochs", "a number >= 0")
        need(all(0 < m < 1 for m in self.milestones) and self.milestones == sorted(self.milestones),
             "milestones", "increasing fractions of training in (0, 1)")  # fmt: skip
        need(0 < self.gamma <= 1, "gamma", "a number in (0, 1]")

    def learning_rate(self, sgd_batch_size: int) -> float:
        """base_lr, scaled linearly with the SGD batch when lr_scaling=linear (GN paper)."""
        if self.lr_scaling is LrScaling.linear:
            return self.base_lr * sgd_batch_size / self.base_batch_size
        return self.base_lr


@dataclass
class LrSchedule:
    """lr multiplier at a step: linear warmup, then cosine decay, step decay or constant.
    Plain values only (the schedule by its name): LambdaLR's state, and so every checkpoint,
    holds this object's fields, and torch.load(weights_only=True) reads only plain types."""

    total_steps: int
    warmup_steps: int = 0
    schedule: str = "cosine"  # a Schedule's value
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for "step"
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        if self.schedule == Schedule.cosine.value:
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if self.schedule == Schedule.step.value:
            return self.gamma ** sum(step >= m * self.total_steps for m in self.milestones)
        return 1.0


def schedule_of(settings: OptimSettings, total_steps: int, epochs: int) -> LrSchedule:
    total = max(1, total_steps)
    warmup = min(total, round(settings.warmup_epochs * total / max(1, epochs)))
    return LrSchedule(total, warmup, settings.schedule.value, tuple(settings.milestones),
                      settings.gamma)  # fmt: skip


def sgd_with_schedule(
    parameters, lr: float, settings: OptimSettings, total_steps: int, epochs: int
) -> dict:
    """Lightning's configure_optimizers answer: SGD, and the schedule stepped every step."""
    return grouped_sgd_with_schedule([(parameters, lr, settings)], total_steps, epochs)


def grouped_sgd_with_schedule(
    groups, total_steps: int, epochs: int, foreach: bool | None = None
) -> dict:
    """SGD with one param group per (parameters, lr, OptimSettings) of `groups`, each with its
    own lr, momentum, weight decay and schedule (a packed run: one group per member; a solo
    run: one group). torch's own SGD does the arithmetic of each group; `foreach`: torch's
    (None: its default, the per-tensor loop on the CPU), the same arithmetic either way."""
    param_groups = [
        dict(
            params=list(parameters),
            lr=lr,
            momentum=s.momentum,
            nesterov=s.nesterov,
            weight_decay=s.weight_decay,
        )  # fmt: skip
        for parameters, lr, s in groups
    ]
    optimizer = torch.optim.SGD(param_groups, foreach=foreach)
    schedules = [schedule_of(s, total_steps, epochs) for _, _, s in groups]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, schedules[0] if len(schedules) == 1 else schedules
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = [
    "LrScaling",
    "LrSchedule",
    "OptimSettings",
    "Schedule",
    "grouped_sgd_with_schedule",
    "sgd_with_schedule",
]
