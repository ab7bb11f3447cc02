"""run(cfg): a Hydra config (or Settings) in; a trained, tested model and metrics.json out."""

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from normlab import metric_names as names
from normlab.callbacks.board import every_norm_option, final_record, start_record
from normlab.callbacks.divergence import StopOnDivergence
from normlab.callbacks.settings import statistics_callbacks
from normlab.compile import compile_enabled, compile_mode, compile_model
from normlab.config import ConfigError, Settings, plain_value, settings
from normlab.console import quiet_console
from normlab.data import DataUnavailable, ImageClassificationData, dataset_spec
from normlab.distributed import batch_sizes, enable_sync
from normlab.metric_names import json_key
from normlab.models import build_model
from normlab.module import Classifier
from normlab.norms import NORMS, norm_factory, options_of
from normlab.resume import (
    AtomicCheckpointIO,
    FitTimeInCheckpoint,
    RngStateInCheckpoint,
    checkpoint_to_resume,
)

log = logging.getLogger(__name__)


def output_dir(root: str) -> Path:
    """Hydra's run folder; outside Hydra, <paths.root>/runs/direct."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(root) / "runs" / "direct"


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


def build_module(s: Settings) -> Classifier:
    """The model for the settings' norm, model and dataset; ConfigError for a norm that cannot
    be built at some layer (naming it), before any data is read."""
    spec = dataset_spec(s.data.name)
    factory = RecordingFactory(norm_factory(s.norm_name, **s.norm_options))
    try:
        model = build_model(s.model.name, factory, in_channels=spec.in_channels,
                            num_classes=spec.num_classes, image_size=spec.image_size,
                            **s.model.builder_options())  # fmt: skip
    except ValueError as error:
        raise ConfigError(str(error)) from None
    factory.raise_first_error(model)
    if s.trainer.sync_batchnorm:
        enable_sync(model)
    parameters = sum(p.numel() for p in model.parameters())
    options = {k: plain_value(v) for k, v in s.norm_options.items()}
    log.info("norm %s %s, model %s (%.1fk parameters), lr %.4g", s.norm_name, options,
             s.model.name, parameters / 1e3, s.learning_rate())  # fmt: skip
    return Classifier(model, spec.num_classes, s.learning_rate(), s.optim)


@dataclass
class RunRecord:
    """What run() leaves: its folder and its metrics.json record."""

    run_dir: Path
    metrics: dict


def write_metrics(
    run_dir: Path, s: Settings | None, status: str, world_size: int = 1, **results
) -> dict:
    """metrics.json (written by the global rank zero only); returns its record."""
    try:
        choices = s.key_choices(world_size) if s is not None else {}
    except Exception:  # settings too broken to describe still get their status recorded
        choices = {}
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    record = {"status": status, **choices, **results, "overrides": overrides}
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


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
    """run(cfg) as train.py calls it; returns the final validation accuracy (for sweepers).
    A failure is recorded in metrics.json (status 'failed').

    Bad config or missing data: one line on stderr, exit code 2. Any other error: re-raised.
    In a sweep, the error is logged and the sweep goes on with the next run.
    """
    s = None
    try:
        s = settings(cfg)
        return run(s).metrics.get(json_key(names.VAL_ACC), float("nan"))
    except Exception as error:
        expected = isinstance(error, ConfigError | DataUnavailable)
        message = f"{error}" if expected else f"{type(error).__name__}: {error}"
        write_metrics(output_dir(cfg.paths.root), s, "failed", error=message)
        if in_sweep():
            log.error("run failed, the sweep goes on: %s", message, exc_info=not expected)
            return float("nan")
        if expected:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        raise


def run(config: DictConfig | Settings, run_dir: Path | None = None) -> RunRecord:
    """Train, test on the best checkpoint, write metrics.json; return the run's record.
    `run_dir`: default Hydra's run folder (outside Hydra: <paths.root>/runs/direct)."""
    s = settings(config) if isinstance(config, DictConfig) else config
    pl.seed_everything(s.seed, workers=True, verbose=False)
    module = build_module(s)
    run_dir = Path(run_dir) if run_dir is not None else output_dir(s.paths.root)
    done = finished_record(run_dir)
    if done is not None and not s.ckpt_path:
        log.info("%s already finished, not training again (move the folder to retrain)", run_dir)
        return RunRecord(run_dir, done)
    quiet_console(run_dir)
    data = ImageClassificationData(**asdict(s.data), seed=s.seed)
    data.prepare_data()  # a missing dataset fails here, before a trainer or a log exists

    # version="" puts the events in the run folder itself: one TensorBoard run per Hydra run.
    logger = TensorBoardLogger(save_dir=str(run_dir), name="", version="", **asdict(s.logger))
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        enable_version_counter=False,
        monitor=s.callbacks.checkpoint.monitor,
        mode=s.callbacks.checkpoint.mode.value,
    )
    divergence = StopOnDivergence()
    statistics = statistics_callbacks(s.callbacks)
    fit_time = FitTimeInCheckpoint()
    callbacks = [RngStateInCheckpoint(), fit_time, checkpoint, divergence, *statistics]
    if s.callbacks.checkpoint.save_last:  # after `checkpoint`: last.ckpt holds its best score
        callbacks.append(last_checkpoint(run_dir / "checkpoints"))
    if s.callbacks.lr_monitor:
        callbacks.append(LearningRateMonitor("step"))
    trainer = pl.Trainer(
        **s.trainer.lightning_options(),
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,  # the datamodule shards by rank itself
    )
    world = trainer.world_size
    module.lr = s.learning_rate(world)  # from the SGD batch: batch_size on each device
    sizes = batch_sizes(s, world)
    if world > 1:
        log.info("%d devices: SGD batch %d, normalization batch %s, lr %.4g", world,
                 sizes["sgd_batch_size"], sizes["norm_batch_size"], module.lr)  # fmt: skip
    device_type = trainer.strategy.root_device.type
    if compile_enabled(s.compile, device_type):
        compile_model(module.model, device_type)
        log.info("compile: torch.compile, mode %s", compile_mode(device_type) or "default")
    norm_option_names = {name: options_of(name) for name in NORMS}
    start_record(logger, every_norm_option(s.key_choices(world), norm_option_names))
    resume_from = checkpoint_to_resume(run_dir, s.ckpt_path)
    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    fit_seconds = fit_time.seconds()  # every session's, for a resumed run
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    for callback in (*statistics, divergence):
        final.update(callback.summary)
    best = checkpoint.best_model_path or None
    if best or divergence.step is None:  # a diverged run is tested only on a finite checkpoint
        test = trainer.test(module, datamodule=data, ckpt_path=best)[0]
        final.update({k: float(v) for k, v in test.items()})
    final[names.EPOCHS] = float(trainer.current_epoch)
    final[names.STEPS] = float(trainer.global_step)
    final[names.TRAIN_IMAGES] = float(trainer.global_step * sizes["sgd_batch_size"])
    final_record(logger, trainer.global_step, final)
    results = {json_key(k): v for k, v in final.items() if k.count("/") <= 1}  # no layer tags
    if best:
        results["best_val_acc"] = float(checkpoint.best_model_score)
    status = "finished" if divergence.step is None else "diverged"
    if divergence.step is not None:
        results["step"] = divergence.step
        log.warning("training loss not finite at step %d: run stopped, recorded as diverged",
                    divergence.step)  # fmt: skip
    record = write_metrics(run_dir, s, status, world, **results, fit_seconds=fit_seconds,
                           best_checkpoint=best)  # fmt: skip
    return RunRecord(run_dir, record)
