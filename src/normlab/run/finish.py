"""A fit's end, one step for a solo run and for each member of a pack: the run's final values,
its HPARAMS row, its status, its metrics.json and its result line (finish_run); each run's
final values and test (fit_endings)."""

import logging
import os
from dataclasses import dataclass

from normlab import metric_names as names
from normlab.callbacks.board import final_record
from normlab.distributed import batch_sizes
from normlab.metric_names import json_key
from normlab.module import Classifier
from normlab.run.job import Member, in_sweep
from normlab.run.machine import machine
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


def member_values(trainer, module: Classifier, k: int, stage: str) -> dict[str, float]:
    """Member k's latest `stage` ("val" or "test") values, under the solo tags."""
    prefix = module.tag(k, "")
    return {
        key.removeprefix(prefix): float(v)
        for key, v in trainer.callback_metrics.items()
        if key.startswith(prefix) and key.removeprefix(prefix).startswith(f"{stage}/")
    }


def fit_endings(fit: Fit, module: Classifier, data) -> list[Ending]:
    """Each member's Ending: its validation and statistics values, then its test on its
    best.ckpt (a diverged member is tested on a finite checkpoint only; a pack's members
    together, each on its own); the fit's seconds read before testing."""
    trainer, size = fit.trainer, len(module.members)
    fit_seconds = fit.fit_time.seconds()
    finals = [{**member_values(trainer, module, k, "val"), **fit.summary(k)} for k in range(size)]
    if size == 1:
        best = fit.best.best_model_path or None
        tested = [bool(best) or 0 not in module.diverged]
        scores = [float(fit.best.best_model_score) if best else None]
        # relative to the run folder: a committed record names no machine's folders
        paths = [os.path.relpath(best, trainer.default_root_dir) if best else None]
        if tested[0]:
            trainer.test(module, datamodule=data, ckpt_path=best, weights_only=True,
                         verbose=not in_sweep())  # fmt: skip
    else:
        tested = fit.best.load_best(module)
        scores = [fit.best.best[k] if found else None for k, found in enumerate(tested)]
        paths = ["checkpoints/best.ckpt" if found else None for found in tested]
        if any(tested):
            trainer.test(module, datamodule=data, verbose=False)
    for k in range(size):
        if tested[k]:
            finals[k].update(member_values(trainer, module, k, "test"))
    return [Ending(finals[k], scores[k], paths[k], module.diverged.get(k), fit_seconds)
            for k in range(size)]  # fmt: skip


def finish_run(member: Member, logger, trainer, ending: Ending) -> RunRecord:
    """A run's end, solo or a pack's member alike: how long it trained, its HPARAMS row, its
    status and its metrics.json (with the member's `extra`), and its result line."""
    run_dir, s = member.run_dir, member.settings
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
    results["machine"] = machine()
    results.update(member.extra)
    status = status_of(ending.diverged_at, trainer.global_step, results)
    record = record_run(run_dir, s, status, trainer.world_size, member.overrides,
                        member.identity, **results)  # fmt: skip
    log.info("%s: %s", run_dir.name, result_line(status, results))
    return RunRecord(run_dir, record)
