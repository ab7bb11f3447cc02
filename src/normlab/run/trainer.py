"""The Trainer of a fit of K >= 1 runs: each run's TensorBoard logger, best checkpoint and
statistics callbacks, the fit's last.ckpt, and the trainer settings; Lightning's own refusals as
one-line ConfigErrors, before any data is read."""

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from normlab.callbacks.board import MemberLogger
from normlab.callbacks.members import MemberStatistics
from normlab.callbacks.settings import statistics_callbacks
from normlab.config import ConfigError, Settings, plain_value
from normlab.console import EpochLine
from normlab.distributed import batch_sizes
from normlab.module import Classifier
from normlab.run.checkpoints import CheckpointUnlessDiverged, MemberCheckpoints, last_checkpoint
from normlab.run.identity import RunIdentity
from normlab.run.job import Member, in_sweep
from normlab.run.resume import (
    AtomicCheckpointIO,
    FitTimeInCheckpoint,
    IdentityInCheckpoint,
    RngStateInCheckpoint,
    first_line,
)

log = logging.getLogger(__name__)


@dataclass
class Fit:
    """A fit's trainer and what it records per member: loggers, the best checkpoint (a
    ModelCheckpoint for one run, MemberCheckpoints for a pack), statistics callbacks."""

    trainer: pl.Trainer
    loggers: list[MemberLogger]
    best: ModelCheckpoint | MemberCheckpoints
    statistics: list[list[pl.Callback]]
    fit_time: FitTimeInCheckpoint

    def summary(self, k: int) -> dict[str, float]:
        """Member k's values for metrics.json, as its statistics callbacks give them."""
        out: dict[str, float] = {}
        for callback in self.statistics[k]:
            out.update(callback.summary)
        return out


def make_trainer(
    members: list[Member],
    root: Path,
    identity: RunIdentity | None = None,
    purge_step: int | None = None,
    module: Classifier | None = None,
) -> Fit:
    """The Trainer of `members` (one run: `root` is its folder; a pack: the pack's, `identity`
    the pack's and `module` its Classifier), their TensorBoard loggers (purging a killed
    session's events from `purge_step` on) and callbacks."""
    s, solo = members[0].settings, len(members) == 1
    identity = identity or members[0].identity
    # version="" puts the events in the run folder itself: one TensorBoard run per Hydra run.
    loggers = [MemberLogger(k, str(m.run_dir), purge_step=purge_step, **asdict(s.logger))
               for k, m in enumerate(members)]  # fmt: skip
    statistics = [statistics_callbacks(m.settings.callbacks, m.sizes.probe_images,
                                       m.sizes.steps_per_epoch, m.sizes.epoch_images)
                  for m in members]  # fmt: skip
    options = s.callbacks.checkpoint
    if solo:
        best = CheckpointUnlessDiverged(dirpath=root / "checkpoints", filename="best",
                                        enable_version_counter=False, monitor=options.monitor,
                                        mode=options.mode.value)  # fmt: skip
        middle = [best, *statistics[0]]
    else:
        run_dirs, name = [m.run_dir for m in members], f"pack-{identity.hash}"
        identities = [m.identity for m in members]
        best = MemberCheckpoints(run_dirs, identities, name, options.monitor, options.mode.value)
        middle = [best, MemberStatistics(module.members, loggers, statistics)]
    # a pack's last.ckpt always: its members' best.ckpt hold no optimizer or loop state
    last = last_checkpoint(root / "checkpoints") if options.save_last or not solo else None
    fit_time = FitTimeInCheckpoint()
    callbacks = run_callbacks(s, identity, fit_time, middle, last)
    # a pack's K members' values: the console shows none
    bar = {} if solo else {"enable_progress_bar": False}
    interval = s.trainer.logging_interval(members[0].sizes.steps_per_epoch)
    trainer = lightning_trainer(s, root, loggers, callbacks, log_every_n_steps=interval, **bar)
    return Fit(trainer, loggers, best, statistics, fit_time)


def run_callbacks(
    s: Settings,
    identity: RunIdentity,
    fit_time: FitTimeInCheckpoint,
    middle: list[pl.Callback],
    last: ModelCheckpoint | None,
) -> list[pl.Callback]:
    """A fit's callbacks in their order: the RNG state, the fit's time and the identity into
    every checkpoint, then `middle` (the best checkpoint first, then the statistics), then
    last.ckpt (after them: it holds the best score and their state), the learning-rate monitor
    and the epoch line."""
    callbacks = [RngStateInCheckpoint(), fit_time, IdentityInCheckpoint(identity), *middle]
    if last is not None:
        callbacks.append(last)
    if s.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    return [*callbacks, EpochLine()]


def lightning_trainer(s: Settings, root: Path, loggers, callbacks, **options) -> pl.Trainer:
    """pl.Trainer with the run's trainer settings (`options` override them), writing whole
    checkpoints; Lightning's own refusals as one-line ConfigErrors."""
    s.trainer.require_available()
    try:
        settings_options = s.trainer.lightning_options()
        if settings_options["enable_progress_bar"] is None:  # a sweep: EpochLine's lines only
            settings_options["enable_progress_bar"] = not in_sweep()
        return pl.Trainer(
            **{**settings_options, **options},
            logger=loggers,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO(), *cluster_plugins()],
            default_root_dir=str(root),
            use_distributed_sampler=False,  # the datamodule shards by rank itself
        )
    except (MisconfigurationException, ValueError, RuntimeError) as error:
        raise ConfigError(f"trainer: Lightning refuses these settings ({first_line(error)}); "
                          "allowed: what pytorch_lightning.Trainer accepts") from None  # fmt: skip


def cluster_plugins() -> list:
    """Under submitit on SLURM, Lightning's own SLURM requeue (on SIGUSR1) is off, so that a
    preempted or timed-out pack has one requeue: submitit's (SIGUSR2, PackTask.checkpoint)."""
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and SLURMEnvironment.detect():
        return [SLURMEnvironment(auto_requeue=False)]
    return []


def settle_lr(members: list[Member], module: Classifier, trainer: pl.Trainer) -> None:
    """Each member's lr for the SGD batch (batch_size on each device), set once; a solo run's
    is logged."""
    world = trainer.world_size
    module.lrs = [m.settings.learning_rate(world) for m in members]
    if len(members) > 1:
        return
    s = members[0].settings
    options = {k: plain_value(v) for k, v in s.norm_options.items()}
    parameters = sum(p.numel() for p in module.model.parameters())
    log.info("norm %s %s, model %s (%.1fk parameters), lr %.4g, on %s", s.norm_name, options,
             s.model.name, parameters / 1e3, module.lrs[0],
             trainer.strategy.root_device)  # fmt: skip
    if world > 1:
        sizes = batch_sizes(s, world)
        log.info("%d devices: SGD batch %d, normalization batch %s", world,
                 sizes["sgd_batch_size"], sizes["norm_batch_size"])  # fmt: skip
