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

from normlab.callbacks import PopulationStats, RunningStatsDrift, TrainEvalGap
from normlab.callbacks.board import final_record, start_record
from normlab.callbacks.divergence import StopOnDivergence
from normlab.config import (
    ConfigError,
    key_choices,
    learning_rate,
    model_options,
    norm_options,
    plain,
)
from normlab.data import DataUnavailable, ImageClassificationData, dataset_spec
from normlab.models import build_model
from normlab.module import Classifier
from normlab.norms import norm_factory

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.root) / "runs" / "direct"


def trainer_options(cfg: DictConfig) -> dict:
    """cfg.trainer as Trainer kwargs; precision 'auto' is bf16-mixed on a GPU, 32-true on CPU."""
    options = plain(cfg.trainer)
    if options.get("precision") == "auto":
        gpu = torch.cuda.is_available() and options.get("accelerator") in ("auto", "gpu", "cuda")
        options["precision"] = "bf16-mixed" if gpu else "32-true"
    return options


def build_module(cfg: DictConfig) -> Classifier:
    """The model for cfg's norm, model and dataset; raises ConfigError before any data is read."""
    try:
        spec = dataset_spec(cfg.data.name)
        norm, options = norm_options(cfg)
        model_name, model_kwargs = model_options(cfg)
        model = build_model(
            model_name,
            norm_factory(norm, **options),
            in_channels=spec.in_channels,
            num_classes=spec.num_classes,
            image_size=spec.image_size,
            **model_kwargs,
        )
        lr = learning_rate(cfg)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    log.info("norm %s %s, model %s, lr %.4g", norm, options, model_name, lr)
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


def write_metrics(run_dir: Path, cfg: DictConfig, status: str, **results) -> None:
    try:
        choices = key_choices(cfg)
    except ValueError:  # a config too broken to describe still gets its status recorded
        choices = {}
    record = {"status": status, **choices, **results}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


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
    data = ImageClassificationData(**plain(cfg.data))
    data.prepare_data()  # a missing dataset fails here, before a trainer or a log exists

    run_dir = output_dir(cfg)
    # version="" puts the events in the run folder itself: one TensorBoard run per Hydra run.
    logger = TensorBoardLogger(save_dir=str(run_dir), name="", version="", **plain(cfg.logger))
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        enable_version_counter=False,
        **plain(cfg.callbacks.checkpoint),
    )
    divergence = StopOnDivergence()
    statistics = statistics_callbacks(cfg.callbacks)
    callbacks = [checkpoint, divergence, *statistics]
    if cfg.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    trainer = pl.Trainer(
        **trainer_options(cfg), logger=logger, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    start_record(logger, key_choices(cfg))
    started = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=cfg.get("ckpt_path"))
    fit_seconds = time.perf_counter() - started
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    for callback in (*statistics, divergence):
        final.update(callback.summary)
    best = checkpoint.best_model_path or None
    if best or divergence.step is None:  # a diverged run is tested only on a finite checkpoint
        test = trainer.test(module, datamodule=data, ckpt_path="best" if best else None)[0]
        final.update({k: float(v) for k, v in test.items()})
    final_record(logger, trainer.global_step, final)
    results = {k.replace("/", "_"): v for k, v in final.items() if k.count("/") <= 1}
    if best:
        results["best_val_acc"] = float(checkpoint.best_model_score)
    status = "finished" if divergence.step is None else "diverged"
    if divergence.step is not None:
        results["step"] = divergence.step
        log.warning("training loss not finite at step %d: run stopped, recorded as diverged",
                    divergence.step)  # fmt: skip
    write_metrics(run_dir, cfg, status, **results, fit_seconds=fit_seconds, best_checkpoint=best)
    return results.get("val_acc", float("nan"))
