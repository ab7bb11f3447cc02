"""The Trainer of a run: its TensorBoard logger, checkpoints, statistics callbacks and the
trainer settings; Lightning's own refusals as one-line ConfigErrors, before any data is read."""

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from normlab.callbacks.board import BoardLogger
from normlab.callbacks.divergence import CheckpointUnlessDiverged, StopOnDivergence
from normlab.callbacks.settings import statistics_callbacks
from normlab.config import ConfigError, Settings, plain_value
from normlab.console import EpochLine
from normlab.distributed import batch_sizes
from normlab.module import Classifier
from normlab.run.identity import RunIdentity
from normlab.run.job import in_sweep
from normlab.run.resume import (
    AtomicCheckpointIO,
    FitTimeInCheckpoint,
    IdentityInCheckpoint,
    RngStateInCheckpoint,
    first_line,
)
from normlab.run.sizes import epoch_images, probe_images, steps_per_epoch

log = logging.getLogger(__name__)


@dataclass
class Fit:
    """A run's trainer and the callbacks whose results it records."""

    trainer: pl.Trainer
    logger: TensorBoardLogger
    checkpoint: ModelCheckpoint
    divergence: StopOnDivergence
    statistics: list[pl.Callback]
    fit_time: FitTimeInCheckpoint


def last_checkpoint(dirpath: Path, divergence: StopOnDivergence) -> ModelCheckpoint:
    """Writes last.ckpt at the end of every epoch (after its validation): what a killed run
    resumes from.

    Not ModelCheckpoint(save_last=True): since Lightning 2.6 that writes last.ckpt only when a
    top-k checkpoint is written at the same step, so a run whose validation accuracy stopped
    improving would resume from its best epoch, not its latest.
    """
    return CheckpointUnlessDiverged(
        divergence, dirpath=dirpath, filename="last", enable_version_counter=False
    )


def make_trainer(
    s: Settings, run_dir: Path, identity: RunIdentity, purge_step: int | None = None
) -> Fit:
    """The Trainer, its TensorBoard logger (purging a killed session's events from
    `purge_step` on) and callbacks; Lightning's own refusals as one-line ConfigErrors, before
    any data is read."""
    # version="" puts the events in the run folder itself: one TensorBoard run per Hydra run.
    logger = BoardLogger(save_dir=str(run_dir), name="", version="", purge_step=purge_step,
                         **asdict(s.logger))  # fmt: skip
    divergence = StopOnDivergence()
    checkpoint = CheckpointUnlessDiverged(
        divergence,
        dirpath=run_dir / "checkpoints",
        filename="best",
        enable_version_counter=False,
        monitor=s.callbacks.checkpoint.monitor,
        mode=s.callbacks.checkpoint.mode.value,
    )
    statistics = statistics_callbacks(
        s.callbacks, probe_images(s), steps_per_epoch(s), epoch_images(s)
    )
    fit_time = FitTimeInCheckpoint()
    last = None
    if s.callbacks.checkpoint.save_last:
        last = last_checkpoint(run_dir / "checkpoints", divergence)
    callbacks = run_callbacks(s, identity, fit_time, [checkpoint, divergence, *statistics], last)
    trainer = lightning_trainer(s, run_dir, logger, callbacks)
    return Fit(trainer, logger, checkpoint, divergence, statistics, fit_time)


def run_callbacks(
    s: Settings,
    identity: RunIdentity,
    fit_time: FitTimeInCheckpoint,
    middle: list[pl.Callback],
    last: ModelCheckpoint | None,
) -> list[pl.Callback]:
    """A run's callbacks in their order, solo or a pack: the RNG state, the fit's time and the
    identity into every checkpoint, then `middle` (the best checkpoint first, then the
    statistics), then last.ckpt (after them: it holds the best score and their state), the
    learning-rate monitor and the epoch line."""
    callbacks = [RngStateInCheckpoint(), fit_time, IdentityInCheckpoint(identity), *middle]
    if last is not None:
        callbacks.append(last)
    if s.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    return [*callbacks, EpochLine()]


def lightning_trainer(s: Settings, root: Path, logger, callbacks, **options) -> pl.Trainer:
    """pl.Trainer with the run's trainer settings (`options` override them), writing whole
    checkpoints; Lightning's own refusals as one-line ConfigErrors."""
    s.trainer.require_available()
    try:
        settings_options = s.trainer.lightning_options()
        settings_options["log_every_n_steps"] = s.trainer.logging_interval(steps_per_epoch(s))
        if settings_options["enable_progress_bar"] is None:  # a sweep: EpochLine's lines only
            settings_options["enable_progress_bar"] = not in_sweep()
        return pl.Trainer(
            **{**settings_options, **options},
            logger=logger,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            default_root_dir=str(root),
            use_distributed_sampler=False,  # the datamodule shards by rank itself
        )
    except (MisconfigurationException, ValueError, RuntimeError) as error:
        raise ConfigError(f"trainer: Lightning refuses these settings ({first_line(error)}); "
                          "allowed: what pytorch_lightning.Trainer accepts") from None  # fmt: skip


def settle_lr(s: Settings, module: Classifier, trainer: pl.Trainer) -> None:
    """The lr for the SGD batch (batch_size on each device), set once and then logged."""
    world = trainer.world_size
    module.lr = s.learning_rate(world)
    options = {k: plain_value(v) for k, v in s.norm_options.items()}
    parameters = sum(p.numel() for p in module.model.parameters())
    log.info("norm %s %s, model %s (%.1fk parameters), lr %.4g, on %s", s.norm_name, options,
             s.model.name, parameters / 1e3, module.lr, trainer.strategy.root_device)  # fmt: skip
    if world > 1:
        sizes = batch_sizes(s, world)
        log.info("%d devices: SGD batch %d, normalization batch %s", world,
                 sizes["sgd_batch_size"], sizes["norm_batch_size"])  # fmt: skip
