"""The callbacks' settings (Hydra group `callbacks`) and the statistics callbacks they make."""

from dataclasses import asdict, dataclass, field
from enum import Enum

import pytorch_lightning as pl

from normlab import metric_names as names
from normlab.callbacks.drift import RunningStatsDrift
from normlab.callbacks.population import PopulationStats
from normlab.callbacks.train_eval_gap import TrainEvalGap
from normlab.errors import require
from normlab.log_interval import drift_interval, probe_budget


class Mode(Enum):
    max = "max"
    min = "min"


@dataclass
class CheckpointSettings:
    """best.ckpt by `monitor`; last.ckpt at every epoch end when save_last."""

    monitor: str = "val/acc"
    mode: Mode = Mode.max
    save_last: bool = True

    def __post_init__(self):
        require(self.monitor in names.EPOCH_METRICS, "callbacks.checkpoint.monitor", self.monitor,
                ", ".join(names.EPOCH_METRICS))  # fmt: skip


@dataclass
class DriftSettings:
    enabled: bool = True
    every_n_steps: int | None = None  # null: ~20 points an epoch, every 8 to 50 steps
    histograms: bool = True

    def __post_init__(self):
        every, auto = self.every_n_steps, "about 20 points an epoch, every 8 to 50 steps"
        require(every is None or every >= 1, "callbacks.drift.every_n_steps", every,
                f"an integer >= 1, or null ({auto})")  # fmt: skip


@dataclass
class GapSettings:
    enabled: bool = True
    every_n_epochs: int = 1
    max_samples: int | None = None  # validation images probed; null: all (as val/acc)

    def __post_init__(self):
        require(self.every_n_epochs >= 1, "callbacks.train_eval_gap.every_n_epochs",
                self.every_n_epochs, "an integer >= 1")  # fmt: skip
        require(self.max_samples is None or self.max_samples >= 1,
                "callbacks.train_eval_gap.max_samples", self.max_samples,
                "an integer >= 1, or null (every validation image)")  # fmt: skip


@dataclass
class PopulationSettings:
    enabled: bool = True
    every_n_epochs: int = 2
    num_samples: int = 4096
    val_samples: int | None = None
    apply_at_end: bool = False
    apply_every_epoch: bool = False

    def __post_init__(self):
        key = "callbacks.population"
        require(self.every_n_epochs >= 1, f"{key}.every_n_epochs", self.every_n_epochs,
                "an integer >= 1")  # fmt: skip
        require(self.num_samples >= 1, f"{key}.num_samples", self.num_samples, "an integer >= 1")
        require(self.val_samples is None or self.val_samples >= 1, f"{key}.val_samples",
                self.val_samples, "an integer >= 1, or null (every validation image)")  # fmt: skip


@dataclass
class CallbacksSettings:
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    lr_monitor: bool = True
    drift: DriftSettings = field(default_factory=DriftSettings)
    train_eval_gap: GapSettings = field(default_factory=GapSettings)
    population: PopulationSettings = field(default_factory=PopulationSettings)


def statistics_callbacks(
    settings: CallbacksSettings,
    val_images: int | None = None,
    steps_per_epoch: int = 1000,
    train_images: int | None = None,
) -> list[pl.Callback]:
    """The enabled statistics callbacks, each with its own options. The validation probes see
    at most `val_images` images (those val/acc sees under trainer.limit_val_batches); every
    probe reads at most probe_budget(`train_images`) images (an eighth of those an epoch trains
    on under trainer.limit_train_batches: a smoke run's probes stay small beside its training);
    drift's null every_n_steps is resolved for `steps_per_epoch` (drift_interval)."""
    budget = probe_budget(train_images)
    kinds = [
        (settings.drift, RunningStatsDrift, None),
        (settings.train_eval_gap, TrainEvalGap, "max_samples"),
        (settings.population, PopulationStats, "val_samples"),
    ]
    callbacks = []
    for options, kind, val_key in kinds:
        options = asdict(options)
        if val_key is not None:
            options[val_key] = smallest(options[val_key], val_images, budget)
        if "num_samples" in options:
            options["num_samples"] = smallest(options["num_samples"], budget)
        if "every_n_steps" in options:
            options["every_n_steps"] = drift_interval(options["every_n_steps"], steps_per_epoch)
        if options.pop("enabled"):
            callbacks.append(kind(**options))
    return callbacks


def smallest(*bounds: int | None) -> int | None:
    """The smallest of the bounds given (None: no bound)."""
    given = [b for b in bounds if b is not None]
    return min(given) if given else None
