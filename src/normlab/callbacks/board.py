"""What the callbacks write to TensorBoard besides the module's scalars: step-exact scalars, the
custom-scalars layout and the HPARAMS record."""

import math

from pytorch_lightning.loggers import TensorBoardLogger

# The HPARAMS tab's metric columns, and the scalar each one reports at the end of a run.
HPARAM_METRICS = {
    "hp/val_acc": "val/acc",
    "hp/test_acc": "test/acc",
    "hp/gap_acc": "gap/acc",
    "hp/gap_loss": "gap/loss",
    "hp/drift_to_batch": "stats/drift_mean_to_batch_mean",
    "hp/drift_change": "stats/drift_mean_change_mean",
    "hp/precise_distance": "precise/distance_mean",
    "hp/diverged_at_step": "diverged_at_step",  # -1 unless the training loss became NaN/Inf
    "hp/epochs": "epochs",
    "hp/steps": "steps",
    "hp/train_images": "train_images",  # steps x SGD batch: how much training a run had
}
# What a column shows when a run has no such value (never NaN, which hides the run in the
# parallel-coordinates view): no running statistics means no drift and no EMA-vs-population
# distance; -1 means the run did not diverge.
ABSENT = {
    "hp/drift_to_batch": 0.0,
    "hp/drift_change": 0.0,
    "hp/precise_distance": 0.0,
    "hp/diverged_at_step": -1.0,
}
NOT_APPLICABLE = "n/a"  # an HPARAMS cell for an option the run's norm does not have

LAYOUT = {
    "normlab": {
        "validation accuracy: eval mode (running stats) vs train mode (batch stats)": [
            "Multiline",
            ["gap/val_acc_eval", "gap/val_acc_train", "precise/val_acc_population"],
        ],
        "train/eval gap (train mode minus eval mode)": ["Multiline", ["gap/acc", "gap/loss"]],
        "running statistics: distance to the batch, change per log": [
            "Multiline",
            [r"stats/drift_.*_mean"],
        ],
        "EMA vs population statistics": ["Multiline", [r"precise/distance_.*"]],
    }
}


def log_now(trainer, metrics: dict[str, float]) -> None:
    """Write scalars to every logger at the current step (not at Lightning's log cadence)."""
    if metrics and trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)


def layer_scalars(
    per_layer: dict[str, float], tag: str, summary: str, empty: float | None = None
) -> dict[str, float]:
    """Each layer's value under ``tag.format(layer)``, then ``<summary>_mean`` and ``_max``
    across layers (both `empty` when there is no layer, or left out if `empty` is None)."""
    metrics = {tag.format(name): value for name, value in per_layer.items()}
    values = list(per_layer.values()) or ([] if empty is None else [empty])
    if values:
        metrics[f"{summary}_mean"] = sum(values) / len(values)
        metrics[f"{summary}_max"] = max(values)
    return metrics


def start_record(logger, hparams: dict) -> None:
    """The HPARAMS row with its metric columns (NaN until the run ends) and the custom layout."""
    logger.log_hyperparams(hparams, metrics={k: math.nan for k in HPARAM_METRICS})
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_custom_scalars(LAYOUT)


def every_norm_option(hparams: dict, options: dict[str, list[str]]) -> dict:
    """`hparams` with a ``norm.<option>`` entry for every option of every norm (`options`: norm
    name -> its option names), NOT_APPLICABLE where the run's norm lacks it: each run of a sweep
    then declares the same HPARAMS columns, whichever run TensorBoard reads first."""
    every = sorted({o for names in options.values() for o in names})
    return {**{f"norm.{o}": NOT_APPLICABLE for o in every}, **hparams}


def final_record(logger, step: int, final: dict[str, float]) -> None:
    """Fill the HPARAMS metric columns from the run's final scalars (ABSENT's values where a
    run has none)."""
    final = {**{HPARAM_METRICS[hp]: v for hp, v in ABSENT.items()}, **final}
    values = {hp: final[tag] for hp, tag in HPARAM_METRICS.items() if tag in final}
    if values:
        logger.log_metrics(values, step=step)
        logger.save()
