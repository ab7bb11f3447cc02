"""What the settings imply for a run's length: steps an epoch, the images an epoch trains on and
the validation images the probes see. Below the identity, which records drift's interval."""

from dataclasses import dataclass

from normlab.config import Settings
from normlab.data import dataset_spec


@dataclass(frozen=True)
class RunSizes:
    """A run's sizes, computed once from its settings (normlab.run.job.Member) and handed on."""

    steps_per_epoch: int
    epoch_images: int
    probe_images: int | None

    @classmethod
    def of(cls, s: Settings) -> "RunSizes":
        steps = steps_per_epoch(s)
        return cls(steps, steps * s.data.batch_size, probe_images(s))


def steps_per_epoch(s: Settings) -> int:
    """Training steps an epoch on one device: the full batches of the images data.val_size
    leaves, or trainer.limit_train_batches of them."""
    steps = (dataset_spec(s.data.name).train_size - s.data.val_size) // s.data.batch_size
    limit = s.trainer.limit_train_batches
    if limit is None:
        return steps
    return min(steps, limit) if isinstance(limit, int) else max(1, int(steps * limit))


def epoch_images(s: Settings) -> int:
    """The training images an epoch sees on one device (under trainer.limit_train_batches),
    an eighth of which bounds every probe (normlab.log_interval.probe_budget)."""
    return steps_per_epoch(s) * s.data.batch_size


def probe_images(s: Settings) -> int | None:
    """The validation images val/acc sees under trainer.limit_val_batches (None: all), which
    the statistics probes then see too."""
    limit = s.trainer.limit_val_batches
    if limit is None:
        return None
    if isinstance(limit, float):
        return max(1, int(limit * s.data.val_size))
    return limit * (s.data.eval_batch_size or s.data.batch_size)
