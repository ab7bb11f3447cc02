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
    "hp/diverged_at_step": "diverged_at_step",  # NaN unless the training loss became NaN/Inf
}

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


def final_record(logger, step: int, final: dict[str, float]) -> None:
    """Fill the HPARAMS metric columns from the run's final scalars."""
    values = {hp: final[tag] for hp, tag in HPARAM_METRICS.items() if tag in final}
    if values:
        logger.log_metrics(values, step=step)
        logger.save()
