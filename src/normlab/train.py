"""run(cfg): a Hydra config (or Settings) in; a trained, tested model and metrics.json out."""

import logging
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import nn

from normlab import metric_names as names
from normlab.atomic_write import DiskFull, disk_full_in_chain
from normlab.callbacks.board import BoardLogger, every_norm_option, final_record, start_record
from normlab.callbacks.divergence import CheckpointUnlessDiverged, StopOnDivergence
from normlab.callbacks.settings import statistics_callbacks
from normlab.compile import compile_enabled, compile_mode, compile_model
from normlab.config import ConfigError, Settings, plain_value, settings
from normlab.console import EpochLine, quiet_console
from normlab.data import DataUnavailable, ImageClassificationData, dataset_spec
from normlab.distributed import batch_sizes
from normlab.job_files import put_back
from normlab.metric_names import json_key
from normlab.models import build_model
from normlab.module import Classifier
from normlab.norms import NORMS, norm_factory, options_of
from normlab.norms.convert import Conversion
from normlab.record import (
    RecordUnreadable,
    RunFolderTaken,
    finished_record,
    read_record,
    write_record,
)
from normlab.resume import (
    AtomicCheckpointIO,
    FitTimeInCheckpoint,
    IdentityInCheckpoint,
    RngStateInCheckpoint,
    checkpoint_to_resume,
    first_line,
    purge_step,
)
from normlab.run_identity import RunIdentity
from normlab.run_lock import RunFolderBusy, run_folder_lock

log = logging.getLogger(__name__)


def output_dir(root: str) -> Path:
    """Hydra's run folder; outside Hydra, <paths.root>/runs/direct."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(root) / "runs" / "direct"


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


class NormSiteError(nn.Identity):
    """Stands where a norm could not be built, so the error can name that layer."""

    def __init__(self, num_channels: int, error: ValueError):
        super().__init__()
        self.num_channels, self.error = num_channels, error


class RecordingFactory:
    """A norm factory that keeps building past an impossible layer, to report it by name."""

    def __init__(self, factory):
        self.factory = factory

    def __call__(self, num_channels: int, spatial_size=None) -> nn.Module:  # norm_factory's form
        try:
            return self.factory(num_channels, spatial_size)
        except ValueError as error:
            return NormSiteError(num_channels, error)

    @staticmethod
    def raise_first_error(model: nn.Module) -> None:
        for name, module in model.named_modules():
            if isinstance(module, NormSiteError):
                raise ConfigError(f"layer {name} ({module.num_channels} channels): {module.error}")


def build_module(s: Settings) -> Classifier:
    """The model for the settings' norm, model and dataset; ConfigError for a norm that cannot
    be built at some layer (naming it), before any data is read. Its lr is the single-device
    one: make_trainer's `settle_lr` sets it for the devices the run has."""
    spec = dataset_spec(s.data.name)
    factory = RecordingFactory(norm_factory(s.norm_name, **s.norm_options))
    try:
        model = build_model(s.model.name, factory, in_channels=spec.in_channels,
                            num_classes=spec.num_classes, image_size=spec.image_size,
                            **s.model.builder_options())  # fmt: skip
    except ValueError as error:
        raise ConfigError(str(error)) from None
    factory.raise_first_error(model)
    conversion = getattr(model, "norm_conversion", None)  # torchvision and timm models
    if conversion is not None:
        require_a_swap(conversion, s)
    return Classifier(model, spec.num_classes, s.learning_rate(), s.optim)


def norm_layers(model: nn.Module) -> dict:
    """For a torchvision or timm model, {"norm_layers": {"swapped": n, "left": {class: n}}}."""
    conversion = getattr(model, "norm_conversion", None)
    if conversion is None:
        return {}
    return {"norm_layers": {"swapped": len(conversion.swapped), "left": conversion.left_counts()}}


def require_a_swap(conversion: Conversion, s: Settings) -> None:
    """ConfigError when norm=<name> replaces no layer of an external model; where some layers
    are left, the console says how many of each."""
    left = conversion.left_counts()
    shown = ", ".join(f"{n} {kind}" for kind, n in left.items()) or "the model has no norm layer"
    arch = getattr(s.model, "arch", s.model.name)
    if not conversion.swapped:
        reasons = "; ".join(sorted({why for _, _, why in conversion.left}))
        why = f": {reasons}" if reasons else ""
        raise ConfigError(f"model.arch={arch} has no layer that norm={s.norm_name} replaces "
                          f"({shown} left{why}); allowed: a model with channel norms "
                          "(BatchNorm2d, GroupNorm, ...), as resnet18")  # fmt: skip
    if left:
        log.warning("norm=%s replaced %d layers of model.arch=%s and left %s",
                    s.norm_name, len(conversion.swapped), arch, shown)  # fmt: skip


@dataclass
class RunRecord:
    """What run() leaves: its folder and its metrics.json record."""

    run_dir: Path
    metrics: dict


def write_metrics(
    run_dir: Path,
    s: Settings | None,
    status: str,
    world_size: int = 1,
    overrides: list[str] | None = None,
    **results,
) -> dict:
    """metrics.json (written by the global rank zero only, whole): the status, the key settings,
    the run's identity and every setting that changes its numbers, the results, the overrides
    (default: Hydra's of this job); returns it."""
    try:
        choices = s.key_choices(world_size) if s is not None else {}
        identity = RunIdentity.of(s) if s is not None else None
    except Exception:  # settings too broken to describe still get their status recorded
        choices, identity = {}, None
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    record = {"status": status, **choices, **results, "overrides": overrides}
    if identity is not None:
        record.update(identity=identity.hash, settings=identity.settings)
    if rank_zero_only.rank == 0:
        write_record(run_dir, record)
    return record


def record_failure(run_dir: Path, s: Settings | None, message: str) -> None:
    """Records a failed run, unless the folder holds a finished run (kept as it is); a record
    that cannot be written (a full disk) is said in one line."""
    try:
        if (read_record(run_dir) or {}).get("status") == "finished":
            return
    except RecordUnreadable:
        pass
    try:
        write_metrics(run_dir, s, "failed", error=message)
    except OSError as error:
        log.error("%s/metrics.json could not be written (%s)", run_dir, error)


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def failure_message(error: Exception) -> tuple[str, bool]:
    """(the line that says what failed, whether it is an expected failure: bad config, missing
    data, a busy run folder, a full disk; those are said without a traceback)."""
    expected = isinstance(error, ConfigError | DataUnavailable | RunFolderBusy | DiskFull)
    return (f"{error}" if expected else f"{type(error).__name__}: {error}"), expected


def run_and_record(cfg: DictConfig) -> float:
    """run(cfg) as train.py calls it; returns the final validation accuracy (for sweepers).
    A failure is recorded in metrics.json (status 'failed'), but over no finished record, and
    not in a folder another process is running.

    Bad config, missing data, a busy run folder: one line on stderr, exit code 2. Any other
    error: re-raised. In a sweep, the error is logged and the sweep goes on with the next run.
    """
    s = None
    try:
        s = settings(cfg)
        return run(s).metrics.get(json_key(names.VAL_ACC), float("nan"))
    except Exception as raised:
        run_dir = output_dir(cfg.paths.root)
        error = disk_full_in_chain(raised, run_dir) or raised
        message, expected = failure_message(error)
        if isinstance(error, RunFolderBusy | RunFolderTaken):  # another run's: left as it was
            put_back(run_dir, lock=isinstance(error, RunFolderTaken))
        else:
            record_failure(run_dir, s, message)
        if in_sweep():
            log.error("run failed, the sweep goes on: %s", message, exc_info=not expected)
            return float("nan")
        if expected:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        raise


@dataclass
class Fit:
    """A run's trainer and the callbacks whose results it records."""

    trainer: pl.Trainer
    logger: TensorBoardLogger
    checkpoint: ModelCheckpoint
    divergence: StopOnDivergence
    statistics: list[pl.Callback]
    fit_time: FitTimeInCheckpoint


def probe_images(s: Settings) -> int | None:
    """The validation images val/acc sees under trainer.limit_val_batches (None: all), which
    the statistics probes then see too."""
    limit = s.trainer.limit_val_batches
    if limit is None:
        return None
    if isinstance(limit, float):
        return max(1, int(limit * s.data.val_size))
    return limit * (s.data.eval_batch_size or s.data.batch_size)


def epoch_images(s: Settings) -> int:
    """The training images an epoch sees on one device (under trainer.limit_train_batches),
    an eighth of which bounds every probe (normlab.log_interval.probe_budget)."""
    return steps_per_epoch(s) * s.data.batch_size


def steps_per_epoch(s: Settings) -> int:
    """Training steps an epoch on one device: the full batches of the images data.val_size
    leaves, or trainer.limit_train_batches of them."""
    steps = (dataset_spec(s.data.name).train_size - s.data.val_size) // s.data.batch_size
    limit = s.trainer.limit_train_batches
    if limit is None:
        return steps
    return min(steps, limit) if isinstance(limit, int) else max(1, int(steps * limit))


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
    callbacks = [RngStateInCheckpoint(), fit_time, IdentityInCheckpoint(identity), checkpoint,
                 divergence, *statistics]  # fmt: skip
    if s.callbacks.checkpoint.save_last:  # after `checkpoint`: last.ckpt holds its best score
        callbacks.append(last_checkpoint(run_dir / "checkpoints", divergence))
    if s.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    callbacks.append(EpochLine())
    trainer = lightning_trainer(s, run_dir, logger, callbacks)
    return Fit(trainer, logger, checkpoint, divergence, statistics, fit_time)


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


def final_results(fit: Fit, module: Classifier, data, s: Settings) -> dict:
    """Validation, statistics and test results (test on best.ckpt), as metrics.json keys; the
    fit's seconds (every session's, for a resumed run), read before testing."""
    trainer = fit.trainer
    fit_seconds = fit.fit_time.seconds()
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    for callback in (*fit.statistics, fit.divergence):
        final.update(callback.summary)
    best = fit.checkpoint.best_model_path or None
    if best or fit.divergence.step is None:  # a diverged run is tested on a finite one only
        test = trainer.test(
            module, datamodule=data, ckpt_path=best, weights_only=True, verbose=not in_sweep()
        )[0]
        final.update({k: float(v) for k, v in test.items()})
    final[names.EPOCHS] = float(trainer.current_epoch)
    final[names.STEPS] = float(trainer.global_step)
    sgd_batch = batch_sizes(s, trainer.world_size)["sgd_batch_size"]
    final[names.TRAIN_IMAGES] = float(trainer.global_step * sgd_batch)
    final_record(fit.logger, trainer.global_step, final)
    results = {json_key(k): v for k, v in final.items() if not names.is_layer_tag(k)}
    if best:
        results["best_val_acc"] = float(fit.checkpoint.best_model_score)
    results["fit_seconds"] = fit_seconds
    # relative to the run folder: a committed record names no machine's folders
    root = fit.trainer.default_root_dir
    results["best_checkpoint"] = os.path.relpath(best, root) if best else None
    return results


def run_status(fit: Fit, results: dict) -> str:
    """finished; diverged (with its step); failed when no step was trained."""
    step = fit.divergence.step
    if step is not None:
        log.warning("not finite at step %d (loss, weights or running statistics): run stopped, "
                    "recorded as diverged", step)  # fmt: skip
    return status_of(step, fit.trainer.global_step, results)


def status_of(diverged_at: int | None, steps: int, results: dict) -> str:
    """A run's status from the step it diverged at (or None) and the steps it trained; the
    divergence step or the error go into `results`."""
    if diverged_at is not None:
        results["step"] = diverged_at
        return "diverged"
    if steps == 0:
        results["error"] = "trained 0 steps"
        return "failed"
    return "finished"


def run(config: DictConfig | Settings, run_dir: Path | None = None) -> RunRecord:
    """Train, test on the best checkpoint, write metrics.json; return the run's record.
    `run_dir`: default Hydra's run folder (outside Hydra: <paths.root>/runs/direct). One process
    per folder; a finished run of the same settings is returned, not trained again."""
    s = settings(config) if isinstance(config, DictConfig) else config
    run_dir = Path(run_dir) if run_dir is not None else output_dir(s.paths.root)
    identity = RunIdentity.of(s)
    with run_folder_lock(run_dir):
        done = finished_record(run_dir, identity)
        if done is not None and not s.ckpt_path:
            log.info("%s already finished, not training again (move the folder to retrain)",
                     run_dir)  # fmt: skip
            return RunRecord(run_dir, done)
        pl.seed_everything(s.seed, workers=True, verbose=False)
        module = build_module(s)
        quiet_console(run_dir, in_sweep())
        resume_from = checkpoint_to_resume(run_dir, s.ckpt_path, identity, module)
        fit = make_trainer(s, run_dir, identity, purge_step=purge_step(resume_from))
        settle_lr(s, module, fit.trainer)
        data = ImageClassificationData(**asdict(s.data), seed=s.seed)
        data.prepare_data()  # a missing dataset fails here, before training starts
        device_type = fit.trainer.strategy.root_device.type
        if compile_enabled(s.compile, device_type):
            compile_model(module.model, device_type)
            log.info("compile: torch.compile, mode %s", compile_mode(device_type) or "default")
        choices = s.key_choices(fit.trainer.world_size)
        options = every_norm_option(choices, {n: options_of(n) for n in NORMS})
        start_record(fit.logger, options, experiment=not in_sweep())
        with interruption_recorded(fit.trainer, [(run_dir, s, None)]):
            fit.trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
        results = final_results(fit, module, data, s)
        results.update(norm_layers(module.model))
        status = run_status(fit, results)
        record = write_metrics(run_dir, s, status, fit.trainer.world_size, **results)
        log.info("%s: %s", run_dir.name, result_line(status, results))
    return RunRecord(run_dir, record)


@contextmanager
def interruption_recorded(trainer: pl.Trainer, runs: list[tuple[Path, Settings, list | None]]):
    """Ctrl-C (SIGINT) or SIGTERM during the fit: each run's record (folder, settings,
    overrides) says `interrupted` at its step before the exit goes on. Lightning turns both into
    a SystemExit (after KeyboardInterrupt, sys.exit(1); after SIGTERM, at the epoch's end, a
    SIGTERMException whose code is None, which would exit 0: it exits 143, as a process ended
    by SIGTERM does)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as stop:
        step = trainer.global_step
        for run_dir, s, overrides in runs:
            write_metrics(run_dir, s, "interrupted", trainer.world_size, overrides,
                          step=step, epochs=float(trainer.current_epoch))  # fmt: skip
        log.warning("interrupted at step %d: recorded; the same command resumes from the last "
                    "epoch's checkpoint", step)  # fmt: skip
        if isinstance(stop, SystemExit) and not stop.code:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise


def result_line(status: str, results: dict) -> str:
    """'finished, val/acc 0.8712, test/acc 0.865': what a run ended with, in one line."""
    values = [f"{tag} {results[json_key(tag)]:.4g}" for tag in (names.VAL_ACC, names.TEST_ACC)
              if isinstance(results.get(json_key(tag)), float)]  # fmt: skip
    return ", ".join([status, *values])
