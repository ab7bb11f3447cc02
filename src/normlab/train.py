"""run(cfg): a Hydra config in; a trained, tested model and metrics.json out."""

import json
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from normlab.config import (
    ConfigError,
    key_choices,
    learning_rate,
    model_options,
    norm_options,
    plain,
)
from normlab.data import ImageClassificationData, dataset_spec
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


def write_metrics(run_dir: Path, cfg: DictConfig, status: str, **results) -> None:
    record = {"status": status, **key_choices(cfg), **results}
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


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
    callbacks = [checkpoint]
    if cfg.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    trainer = pl.Trainer(
        **trainer_options(cfg), logger=logger, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    logger.log_hyperparams(key_choices(cfg))
    trainer.fit(module, datamodule=data, ckpt_path=cfg.get("ckpt_path"))
    val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    best = checkpoint.best_model_path or None
    test = trainer.test(module, datamodule=data, ckpt_path="best" if best else None)[0]
    results = {k.replace("/", "_"): float(v) for k, v in {**val, **test}.items()}
    if best:
        results["best_val_acc"] = float(checkpoint.best_model_score)
    write_metrics(run_dir, cfg, "finished", **results, best_checkpoint=best)
    return results.get("val_acc", float("nan"))
