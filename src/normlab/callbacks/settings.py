"""The callbacks' settings (Hydra group `callbacks`) and the statistics callbacks they make."""

from dataclasses import asdict, dataclass, field
from enum import Enum

import pytorch_lightning as pl

from normlab.callbacks.drift import RunningStatsDrift
from normlab.callbacks.population import PopulationStats
from normlab.callbacks.train_eval_gap import TrainEvalGap
from normlab.errors import require


class Mode(Enum):
    max = "max"
    min = "min"


@dataclass
class CheckpointSettings:
    """best.ckpt by `monitor`; last.ckpt at every epoch end when save_last."""

    monitor: str = "val/acc"
    mode: Mode = Mode.max
    save_last: bool = True


@dataclass
class DriftSettings:
    enabled: bool = True
    every_n_steps: int = 50
    histograms: bool = True

    def __post_init__(self):
        require(self.every_n_steps >= 1, "callbacks.drift.every_n_steps", self.every_n_steps,
                "an integer >= 1")  # fmt: skip


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


def statistics_callbacks(settings: CallbacksSettings) -> list[pl.Callback]:
    """The enabled statistics callbacks, each with its own options."""
    kinds = [
        (settings.drift, RunningStatsDrift),
        (settings.train_eval_gap, TrainEvalGap),
        (settings.population, PopulationStats),
    ]
    callbacks = []
    for options, kind in kinds:
        options = asdict(options)
        if options.pop("enabled"):
            callbacks.append(kind(**options))
    return callbacks
