"""What the callbacks write to TensorBoard besides the module's scalars: step-exact scalars, the
custom-scalars layout and the HPARAMS record."""

import re

from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard.summary import hparams as tensorboard_hparams

from normlab import metric_names as names

# The HPARAMS tab's metric columns, names.HPARAM + <column>, each filled from its final tag:
# the question's first (accuracy, then the train/eval gap and the drift that explain it).
FIRST_METRICS = ("val_acc", "test_acc", "gap_acc", "drift_to_batch")
HPARAM_METRICS = {
    names.HPARAM + f.column: f.tag
    for f in sorted(
        names.FINALS,
        key=lambda f: (
            FIRST_METRICS.index(f.column) if f.column in FIRST_METRICS else len(FIRST_METRICS)
        ),
    )  # fmt: skip
    if f.hparam
}
# TensorBoard sorts HPARAMS columns by (not differs, name): marking `norm` as the column that
# differs in a run's own summary puts it first, then the rest by name (batch_size, dataset, ...);
# a sweep's summary (normlab.sweep_hparams) lists only the columns that differ.
LEAD_HPARAM = "norm"
ABSENT = {
    names.HPARAM + f.column: f.absent for f in names.FINALS if f.hparam and f.absent is not None
}
NOT_APPLICABLE = "n/a"  # an HPARAMS cell for an option the run's norm does not have
INTEGER_WIDTH = 8  # an integer's HPARAMS cell: text this wide (hparam_cell)

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


class BoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger, with Lightning's epoch counter under train/epoch and
    LearningRateMonitor's lr-SGD under train/lr, so that no group sorts before the question's
    (TensorBoard orders groups by name: epoch and lr-SGD would lead)."""

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        super().log_metrics({board_tag(k): v for k, v in metrics.items()}, step)


MEMBER_KEY = re.compile(r"member(\d+)/(.+)")
PARAM_GROUP_KEY = re.compile(r"(lr-[^/]+)/pg(\d+)")  # LearningRateMonitor's, one group each


class MemberLogger(BoardLogger):
    """Member `index`'s BoardLogger, in its run folder: its values (``member<index>/<tag>``
    in a pack) under the solo tags, its param group's lr as a solo run names it (``lr-SGD``),
    and values of the whole fit (``epoch``) as they are. A solo run's values (no member tag,
    one param group) are all its own."""

    def __init__(self, index: int, save_dir: str, **options):
        super().__init__(save_dir=save_dir, name="", version="", **options)
        self.index = index

    def own(self, metrics: dict) -> dict:
        mine = {}
        for key, value in metrics.items():
            member, group = MEMBER_KEY.fullmatch(key), PARAM_GROUP_KEY.fullmatch(key)
            if member:
                if int(member[1]) == self.index:
                    mine[member[2]] = value
            elif group:
                if int(group[2]) == self.index + 1:
                    mine[group[1]] = value
            else:
                mine[key] = value
        return mine

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        mine = self.own(metrics)
        if mine:
            super().log_metrics(mine, step)


def board_tag(key: str) -> str:
    """A logged key as BoardLogger writes it: epoch -> train/epoch, lr-SGD/pg1 -> train/lr/pg1."""
    return names.EPOCH if key == "epoch" else re.sub(r"^lr-[^/]+", names.LR, key)


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
def start_record(logger, hparams: dict, experiment: bool = True) -> None:
    """The run's HPARAMS row, declaring its metric columns as the experiment (`experiment`: a run
    seen alone; a sweep's runs leave the experiment to normlab.sweep_hparams, as TensorBoard
    reads one experiment summary, the first it finds), and the custom layout. No metric value is
    written now (no NaN placeholder in the Scalars tab): final_record writes them at the end."""
    logger.log_hyperparams(hparams)  # hparams.yaml; no summary (no metrics given)
    if isinstance(logger, TensorBoardLogger):
        cells = {k: hparam_cell(k, v) for k, v in hparams.items()}
        writer = logger.experiment._get_file_writer()
        summary, *sessions = tensorboard_hparams(cells, dict.fromkeys(HPARAM_METRICS, 0.0))
        if experiment:
            writer.add_summary(describe(summary, differs={LEAD_HPARAM}))
        for session in sessions:
            writer.add_summary(session)
        logger.experiment.add_custom_scalars(LAYOUT)


def describe(experiment, differs: set[str]):
    """The HPARAMS experiment summary with the columns `differs` marked as differing (TensorBoard
    lists them first, and shows the first five), and each metric column named by its record
    column (val_acc, not z_hp/val_acc)."""
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in differs
    for info in data.experiment.metric_infos:
        info.display_name = info.name.tag.removeprefix(names.HPARAM)
    value.metadata.plugin_data.content = data.SerializeToString()
    return experiment


def hparam_cell(key: str, value) -> bool | float | str:
    """A value as its HPARAMS cell. TensorBoard shows every number with 5 significant digits
    (4.0000) and sorts text as text, so an integer is text right-aligned to INTEGER_WIDTH: it
    reads 4 and sorts in numeric order. A norm option is text in every run (a number in one run
    and 'n/a' in another would cut the other's line in the parallel-coordinates view)."""
    option = key.startswith("norm.")
    if isinstance(value, bool):
        return str(value) if option else value
    if isinstance(value, int) and value >= 0:
        return f"{value:>{INTEGER_WIDTH}}"
    if isinstance(value, float) and not option:
        return value
    return NOT_APPLICABLE if value is None else str(value)


def every_norm_option(hparams: dict, options: dict[str, list[str]]) -> dict:
    """`hparams` with a ``norm.<option>`` entry for every option of every norm (`options`: norm
    name -> its option names), NOT_APPLICABLE where the run's norm lacks it (or leaves it
    unset): each run of a sweep then declares the same HPARAMS columns whichever run TensorBoard
    reads first."""
    every = sorted({o for names in options.values() for o in names})
    own = {k: NOT_APPLICABLE if v is None else v
           for k, v in hparams.items() if k.startswith("norm.")}  # fmt: skip
    return {**{f"norm.{o}": NOT_APPLICABLE for o in every}, **hparams, **own}


def final_record(logger, step: int, final: dict[str, float]) -> None:
    """Fill the HPARAMS metric columns from the run's final scalars (ABSENT's values where a
    run has none)."""
    final = {**{HPARAM_METRICS[hp]: v for hp, v in ABSENT.items()}, **final}
    values = {hp: final[tag] for hp, tag in HPARAM_METRICS.items() if tag in final}
    if values:
        logger.log_metrics(values, step=step)
        logger.save()
