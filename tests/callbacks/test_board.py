"""The TensorBoard layout and HPARAMS columns come from the metric-name table."""

import re

from normlab import metric_names as names
from normlab.callbacks.board import HPARAM_METRICS, LAYOUT, final_record

UNITS = {  # a chart's quantity, from its tags
    "accuracy": re.compile(r"(val_acc|/acc$)"),
    "loss": re.compile(r"(val_loss|/loss$|/loss_step$)"),
    "mean_to_batch": re.compile(r"drift_mean_to_batch"),
    "std_to_batch": re.compile(r"drift_std_to_batch"),
    "mean_change": re.compile(r"drift_mean_change"),
    "var_change": re.compile(r"drift_var_change"),
    "population": re.compile(r"precise/distance"),
}


def test_every_custom_scalar_chart_shows_one_quantity():
    for title, (_, tags) in LAYOUT["normlab"].items():
        quantities = {
            unit for tag in tags for unit, pattern in UNITS.items() if pattern.search(tag)
        }
        assert len(quantities) == 1, (title, tags, quantities)
        gap_chart = tags in ([names.GAP_ACC], [names.GAP_LOSS])
        assert gap_chart or "gap" not in title, title
        summaries = {
            tag.rsplit("_", 1)[-1] for tag in tags if tag.startswith(("stats/", "precise/d"))
        }
        assert len(summaries) <= 1, (title, tags)  # a layer summary's mean and max apart


def test_the_question_s_charts_come_first():
    charts = list(LAYOUT["normlab"].values())
    assert charts[0] == ["Multiline", [names.VAL_ACC]]
    assert charts[1] == ["Multiline", ["train/loss_step"]]


class RecordingLogger:
    def __init__(self):
        self.logged: dict[str, float] = {}

    def log_metrics(self, values: dict, step: int) -> None:
        self.logged.update(values)

    def save(self) -> None:
        pass


def test_hparams_columns_include_training_length_and_absent_values_are_documented():
    """README: hp/drift_* and hp/precise_distance are 0 without running statistics,
    hp/diverged_at_step is -1 without divergence; a run that has them logs its own."""
    assert HPARAM_METRICS["hp/drift_to_batch"] == "stats/drift_mean_to_batch_mean"
    assert {"hp/epochs", "hp/steps", "hp/train_images", "hp/val_acc"} <= set(HPARAM_METRICS)
    group_run = RecordingLogger()  # a GN run that finished: no drift, precise or divergence tags
    final_record(group_run, 10, {names.VAL_ACC: 0.9, names.TEST_ACC: 0.8, names.STEPS: 10.0})
    assert group_run.logged["hp/drift_to_batch"] == 0.0
    assert group_run.logged["hp/drift_change"] == 0.0
    assert group_run.logged["hp/precise_distance"] == 0.0
    assert group_run.logged["hp/diverged_at_step"] == -1.0
    assert group_run.logged["hp/val_acc"] == 0.9 and group_run.logged["hp/steps"] == 10.0
    bn_run = RecordingLogger()
    final_record(bn_run, 10, {names.DRIFT_TO_BATCH: 0.2, names.DIVERGED_AT_STEP: 7.0})
    assert bn_run.logged["hp/drift_to_batch"] == 0.2 and bn_run.logged["hp/diverged_at_step"] == 7
