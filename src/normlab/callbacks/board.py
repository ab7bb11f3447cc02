"""What the callbacks write to TensorBoard besides the module's scalars: step-exact scalars, the
custom-scalars layout and the HPARAMS record."""

from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard.summary import hparams as tensorboard_hparams

from normlab import metric_names as names

# The HPARAMS tab's metric columns, hp/<column>, each filled from its final tag: the question's
# first (accuracy, then the train/eval gap and the drift that explain it).
FIRST_METRICS = ("val_acc", "test_acc", "gap_acc", "drift_to_batch")
HPARAM_METRICS = {
    f"hp/{f.column}": f.tag
    for f in sorted(
        names.FINALS,
        key=lambda f: (
            FIRST_METRICS.index(f.column) if f.column in FIRST_METRICS else len(FIRST_METRICS)
        ),
    )  # fmt: skip
    if f.hparam
}
# TensorBoard sorts HPARAMS columns by (not differs, name): marking `norm` as the column that
# differs puts it first, then the rest by name (batch_size, dataset, ..., lr, ...).
LEAD_HPARAM = "norm"
ABSENT = {f"hp/{f.column}": f.absent for f in names.FINALS if f.hparam and f.absent is not None}
NOT_APPLICABLE = "n/a"  # an HPARAMS cell for an option the run's norm does not have

# Custom Scalars: the question's charts first (validation accuracy, the training loss per
# step), then one quantity per chart, a layer summary's mean and max in charts of their own.
DRIFT_CHARTS = {
    "mean_to_batch": "running mean to batch mean (running-std units)",
    "std_to_batch": "running std to batch std (running-std units)",
    "mean_change": "running mean change per log (relative)",
    "var_change": "running var change per log (relative)",
}


def layer_summary_charts(prefix: str, title: str) -> dict:
    return {
        f"{title}, {word} over layers": ["Multiline", [f"{prefix}_{word}"]]
        for word in ("mean", "max")
    }


LAYOUT = {
    "normlab": {
        "validation accuracy": ["Multiline", [names.VAL_ACC]],
        "training loss per step": ["Multiline", ["train/loss_step"]],
        "validation accuracy: eval mode (running stats), train mode (batch stats), population": [
            "Multiline",
            [names.GAP_VAL_ACC_EVAL, names.GAP_VAL_ACC_TRAIN, names.VAL_ACC_POPULATION],
        ],
        "validation loss: eval mode vs train mode": [
            "Multiline",
            [names.GAP_VAL_LOSS_EVAL, names.GAP_VAL_LOSS_TRAIN],
        ],
        "train/eval accuracy gap (train mode minus eval mode)": ["Multiline", [names.GAP_ACC]],
        "train/eval loss gap (train mode minus eval mode)": ["Multiline", [names.GAP_LOSS]],
        **{
            title: chart
            for metric, text in DRIFT_CHARTS.items()
            for title, chart in layer_summary_charts(names.DRIFT.format(metric), text).items()
        },
        **layer_summary_charts(
            names.PRECISE_DISTANCE_PREFIX, "EMA mean to population mean (population-std units)"
        ),
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


@rank_zero_only
def start_record(logger, hparams: dict) -> None:
    """The HPARAMS row declaring its metric columns, and the custom layout. No metric value is
    written now (no NaN placeholder in the Scalars tab): final_record writes them at the end."""
    logger.log_hyperparams(hparams)  # hparams.yaml; no summary (no metrics given)
    if isinstance(logger, TensorBoardLogger):
        plain = {k: v if isinstance(v, bool | int | float | str) else str(v)
                 for k, v in hparams.items()}  # fmt: skip
        writer = logger.experiment._get_file_writer()
        experiment, *sessions = tensorboard_hparams(plain, dict.fromkeys(HPARAM_METRICS, 0.0))
        for summary in (lead_with(experiment, LEAD_HPARAM), *sessions):
            writer.add_summary(summary)
        logger.experiment.add_custom_scalars(LAYOUT)


def lead_with(experiment, name: str):
    """The HPARAMS experiment summary with column `name` marked as the one that differs."""
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name == name
    value.metadata.plugin_data.content = data.SerializeToString()
    return experiment


def option_text(value) -> str:
    """A norm option as its HPARAMS cell: text, one type for every run (a number in one run and
    'n/a' in another would cut the other's line in the parallel-coordinates view)."""
    return NOT_APPLICABLE if value is None else str(value)


def every_norm_option(hparams: dict, options: dict[str, list[str]]) -> dict:
    """`hparams` with a ``norm.<option>`` entry for every option of every norm (`options`: norm
    name -> its option names), NOT_APPLICABLE where the run's norm lacks it (or leaves it
    unset): each run of a sweep then declares the same HPARAMS columns, of one type (text),
    whichever run TensorBoard reads first."""
    every = sorted({o for names in options.values() for o in names})
    own = {k: option_text(v) for k, v in hparams.items() if k.startswith("norm.")}
    return {**{f"norm.{o}": NOT_APPLICABLE for o in every}, **hparams, **own}


def final_record(logger, step: int, final: dict[str, float]) -> None:
    """Fill the HPARAMS metric columns from the run's final scalars (ABSENT's values where a
    run has none)."""
    final = {**{HPARAM_METRICS[hp]: v for hp, v in ABSENT.items()}, **final}
    values = {hp: final[tag] for hp, tag in HPARAM_METRICS.items() if tag in final}
    if values:
        logger.log_metrics(values, step=step)
        logger.save()
