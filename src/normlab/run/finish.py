"""A fit's end, one step for a solo run and for each member of a pack: the run's final values,
its HPARAMS row, its status, its metrics.json and its result line (finish_run); a solo fit's
final values and test (fit_ending)."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from normlab import metric_names as names
from normlab.callbacks.board import final_record
from normlab.config import Settings
from normlab.distributed import batch_sizes
from normlab.metric_names import json_key
from normlab.module import Classifier
from normlab.run.job import in_sweep
from normlab.run.record import RunRecord, record_run, result_line, status_of
from normlab.run.trainer import Fit

log = logging.getLogger(__name__)


@dataclass
class Ending:
    """What a fit ended with, for one run: its final values by tag (validation, statistics,
    test), its best score and checkpoint (relative to its folder), the step it diverged at,
    and the fit's seconds (every session's, for a resumed run)."""

    final: dict[str, float]
    best_score: float | None
    best_checkpoint: str | None
    diverged_at: int | None
    fit_seconds: float


def fit_ending(fit: Fit, module: Classifier, data) -> Ending:
    """A run's Ending: its validation and statistics values, then its test on best.ckpt (a
    diverged run is tested on a finite checkpoint only); the fit's seconds read before testing."""
    trainer = fit.trainer
    fit_seconds = fit.fit_time.seconds()
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    for callback in (*fit.statistics, fit.divergence):
        final.update(callback.summary)
    best = fit.checkpoint.best_model_path or None
    if best or fit.divergence.step is None:
        test = trainer.test(
            module, datamodule=data, ckpt_path=best, weights_only=True, verbose=not in_sweep()
        )[0]
        final.update({k: float(v) for k, v in test.items()})
    score = float(fit.checkpoint.best_model_score) if best else None
    # relative to the run folder: a committed record names no machine's folders
    relative = os.path.relpath(best, trainer.default_root_dir) if best else None
    return Ending(final, score, relative, fit.divergence.step, fit_seconds)


def finish_run(
    run_dir: Path,
    s: Settings,
    logger,
    trainer,
    ending: Ending,
    overrides: list[str] | None = None,
    **extra,
) -> RunRecord:
    """A run's end, solo or a pack's member alike: how long it trained, its HPARAMS row, its
    status and its metrics.json (with `extra`), and its result line."""
    final = dict(ending.final)
    final[names.EPOCHS] = float(trainer.current_epoch)
    final[names.STEPS] = float(trainer.global_step)
    sgd_batch = batch_sizes(s, trainer.world_size)["sgd_batch_size"]
    final[names.TRAIN_IMAGES] = float(trainer.global_step * sgd_batch)
    if ending.diverged_at is not None:
        final[names.DIVERGED_AT_STEP] = float(ending.diverged_at)
        log.warning("%s: not finite at step %d (loss, weights or running statistics): stopped, "
                    "recorded as diverged", run_dir.name, ending.diverged_at)  # fmt: skip
    final_record(logger, trainer.global_step, final)
    results = {json_key(k): v for k, v in final.items() if not names.is_layer_tag(k)}
    if ending.best_score is not None:
        results["best_val_acc"] = ending.best_score
    results["fit_seconds"] = ending.fit_seconds
    results["best_checkpoint"] = ending.best_checkpoint
    results.update(extra)
    status = status_of(ending.diverged_at, trainer.global_step, results)
    record = record_run(run_dir, s, status, trainer.world_size, overrides, **results)
    log.info("%s: %s", run_dir.name, result_line(status, results))
    return RunRecord(run_dir, record)
