"""run(cfg): a Hydra config in; a trained, tested model and metrics.json out."""

import json
import logging
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from normlab.callbacks import PopulationStats, RunningStatsDrift, TrainEvalGap
from normlab.callbacks.board import every_norm_option, final_record, start_record
from normlab.callbacks.divergence import StopOnDivergence
from normlab.compile import compile_enabled, compile_mode, compile_model
from normlab.config import (
    ConfigError,
    key_choices,
    learning_rate,
    model_options,
    norm_options,
    plain,
    validate,
)
from normlab.console import quiet_console
from normlab.data import DataUnavailable, ImageClassificationData, dataset_spec
from normlab.distributed import batch_sizes, check_sync_batchnorm, enable_sync
from normlab.models import build_model
from normlab.module import Classifier, check_optim
from normlab.norms import NORMS, norm_factory, options_of
from normlab.resume import AtomicCheckpointIO, RngStateInCheckpoint, checkpoint_to_resume

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.root) / "runs" / "direct"


def trainer_options(cfg: DictConfig) -> dict:
    """cfg.trainer as Trainer kwargs; precision 'auto' is bf16-mixed on a GPU, 32-true on CPU.
    sync_batchnorm is normlab's to apply (normlab.distributed), not Lightning's."""
    options = plain(cfg.trainer)
    options.pop("sync_batchnorm", None)
    if options.get("precision") == "auto":
        gpu = torch.cuda.is_available() and options.get("accelerator") in ("auto", "gpu", "cuda")
        options["precision"] = "bf16-mixed" if gpu else "32-true"
    return options


def last_checkpoint(dirpath: Path) -> ModelCheckpoint:
    """Writes last.ckpt at the end of every epoch (after its validation): what a killed run
    resumes from.

    Not ModelCheckpoint(save_last=True): since Lightning 2.6 that writes last.ckpt only when a
    top-k checkpoint is written at the same step, so a run whose validation accuracy stopped
    improving would resume from its best epoch, not its latest.
    """
    return ModelCheckpoint(dirpath=dirpath, filename="last", enable_version_counter=False)


class NormSiteError(nn.Identity):
    """Stands where a norm could not be built, so the error can name that layer."""

    def __init__(self, num_channels: int, error: ValueError):
        super().__init__()
        self.num_channels, self.error = num_channels, error


class RecordingFactory:
    """A norm factory that keeps building past an impossible layer, to report it by name."""

    def __init__(self, factory):
        self.factory = factory

    def __call__(self, num_channels: int, spatial_size=None) -> nn.Module:
        try:
            return self.factory(num_channels, spatial_size)
        except ValueError as error:
            return NormSiteError(num_channels, error)

    @staticmethod
    def raise_first_error(model: nn.Module) -> None:
        for name, module in model.named_modules():
            if isinstance(module, NormSiteError):
                raise ConfigError(f"layer {name} ({module.num_channels} channels): {module.error}")


def build_module(cfg: DictConfig) -> Classifier:
    """The model for cfg's norm, model and dataset; raises ConfigError before any data is read."""
    try:
        validate(cfg)
        check_sync_batchnorm(cfg)
        check_optim(plain(cfg.optim))
        spec = dataset_spec(cfg.data.name)
        val_size = cfg.data.val_size
        if not (isinstance(val_size, int) and 0 < val_size < spec.train_size):
            raise ConfigError(
                f"data.val_size={val_size} must be an integer between 1 and "
                f"{spec.train_size - 1} ({cfg.data.name} has {spec.train_size} training images)"
            )
        norm, options = norm_options(cfg)
        model_name, model_kwargs = model_options(cfg)
        factory = RecordingFactory(norm_factory(norm, **options))
        model = build_model(
            model_name,
            factory,
            in_channels=spec.in_channels,
            num_classes=spec.num_classes,
            image_size=spec.image_size,
            **model_kwargs,
        )
        factory.raise_first_error(model)
        if cfg.trainer.get("sync_batchnorm"):
            enable_sync(model)
        lr = learning_rate(cfg)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    parameters = sum(p.numel() for p in model.parameters())
    log.info("norm %s %s, model %s (%.1fk parameters), lr %.4g", norm, options, model_name,
             parameters / 1e3, lr)  # fmt: skip
    return Classifier(model, spec.num_classes, lr, plain(cfg.optim))


def statistics_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The enabled statistics callbacks, each with its own options from cfg.callbacks."""
    kinds = {
        "drift": RunningStatsDrift,
        "train_eval_gap": TrainEvalGap,
        "population": PopulationStats,
    }
    callbacks = []
    for key, kind in kinds.items():
        options = plain(cfg.get(key) or {"enabled": False})
        if options.pop("enabled", True):
            callbacks.append(kind(**options))
    return callbacks


def write_metrics(
    run_dir: Path, cfg: DictConfig, status: str, world_size: int = 1, **results
) -> None:
    """metrics.json, written by the global rank zero only."""
    if rank_zero_only.rank != 0:
        return
    try:
        choices = key_choices(cfg, world_size)
    except Exception:  # a config too broken to describe still gets its status recorded
        choices = {}
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    record = {"status": status, **choices, **results, "overrides": overrides}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


def finished_record(run_dir: Path) -> dict | None:
    """The run folder's metrics.json when it says the run finished, else None."""
    path = run_dir / "metrics.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("status") == "finished":
            return record
    return None


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_and_record(cfg: DictConfig) -> float:
    """run(cfg) as train.py calls it: a failure is recorded in metrics.json (status 'failed').

    Bad config or missing data: one line on stderr, exit code 2. Any other error: re-raised.
    In a sweep, the error is logged and the sweep goes on with the next run.
    """
    try:
        return run(cfg)
    except Exception as error:
        expected = isinstance(error, ConfigError | DataUnavailable)
        message = f"{error}" if expected else f"{type(error).__name__}: {error}"
        write_metrics(output_dir(cfg), cfg, "failed", error=message)
        if in_sweep():
            log.error("run failed, the sweep goes on: %s", message, exc_info=not expected)
            return float("nan")
        if expected:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        raise


def run(cfg: DictConfig) -> float:
    """Train, test on the best checkpoint, write metrics.json; return the final val accuracy."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg)
    run_dir = output_dir(cfg)
    done = finished_record(run_dir)
    if done is not None and not cfg.get("ckpt_path"):
        log.info("%s already finished, not training again (move the folder to retrain)", run_dir)
        return done.get("val_acc", float("nan"))
    quiet_console(run_dir)
    data = ImageClassificationData(**plain(cfg.data), seed=cfg.seed)
    data.prepare_data()  # a missing dataset fails here, before a trainer or a log exists

    # version="" puts the events in the run folder itself: one TensorBoard run per Hydra run.
    logger = TensorBoardLogger(save_dir=str(run_dir), name="", version="", **plain(cfg.logger))
    checkpoint_options = plain(cfg.callbacks.checkpoint)
    save_last = checkpoint_options.pop("save_last", True)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        enable_version_counter=False,
        **checkpoint_options,
    )
    divergence = StopOnDivergence()
    statistics = statistics_callbacks(cfg.callbacks)
    callbacks = [RngStateInCheckpoint(), checkpoint, divergence, *statistics]
    if save_last:  # after `checkpoint`, so that last.ckpt holds its updated best score
        callbacks.append(last_checkpoint(run_dir / "checkpoints"))
    if cfg.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    trainer = pl.Trainer(
        **trainer_options(cfg),
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,  # the datamodule shards by rank itself
    )
    world = trainer.world_size
    module.lr = learning_rate(cfg, world)  # from the SGD batch: batch_size on each device
    sizes = batch_sizes(cfg, world)
    if world > 1:
        log.info("%d devices: SGD batch %d, normalization batch %s, lr %.4g", world,
                 sizes["sgd_batch_size"], sizes["norm_batch_size"], module.lr)  # fmt: skip
    device_type = trainer.strategy.root_device.type
    if compile_enabled(cfg.get("compile", "auto"), device_type):
        compile_model(module.model, device_type)
        log.info("compile: torch.compile, mode %s", compile_mode(device_type) or "default")
    norm_option_names = {name: options_of(name) for name in NORMS}
    start_record(logger, every_norm_option(key_choices(cfg, world), norm_option_names))
    started = time.perf_counter()
    resume_from = checkpoint_to_resume(run_dir, cfg.get("ckpt_path"))
    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    fit_seconds = time.perf_counter() - started
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    for callback in (*statistics, divergence):
        final.update(callback.summary)
    best = checkpoint.best_model_path or None
    if best or divergence.step is None:  # a diverged run is tested only on a finite checkpoint
        test = trainer.test(module, datamodule=data, ckpt_path=best)[0]
        final.update({k: float(v) for k, v in test.items()})
    final.update(epochs=float(trainer.current_epoch), steps=float(trainer.global_step),
                 train_images=float(trainer.global_step * sizes["sgd_batch_size"]))  # fmt: skip
    final_record(logger, trainer.global_step, final)
    results = {k.replace("/", "_"): v for k, v in final.items() if k.count("/") <= 1}
    if best:
        results["best_val_acc"] = float(checkpoint.best_model_score)
    status = "finished" if divergence.step is None else "diverged"
    if divergence.step is not None:
        results["step"] = divergence.step
        log.warning("training loss not finite at step %d: run stopped, recorded as diverged",
                    divergence.step)  # fmt: skip
    write_metrics(run_dir, cfg, status, world, **results, fit_seconds=fit_seconds,
                  best_checkpoint=best)  # fmt: skip
    return results.get("val_acc", float("nan"))
