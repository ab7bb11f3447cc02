"""A fit's end: the run's validation, statistics and test results (test on best.ckpt), written
to TensorBoard's HPARAMS row, and its status."""

import logging
import os

from normlab import metric_names as names
from normlab.callbacks.board import final_record
from normlab.config import Settings
from normlab.distributed import batch_sizes
from normlab.metric_names import json_key
from normlab.module import Classifier
from normlab.run.job import in_sweep
from normlab.run.record import status_of
from normlab.run.trainer import Fit

log = logging.getLogger(__name__)


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
