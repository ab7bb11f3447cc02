"""The TensorBoard layout and HPARAMS columns come from the metric-name table."""

import re

from tensorboard.plugins.hparams import plugin_data_pb2

from normlab import metric_names as names
from normlab.callbacks.board import HPARAM_METRICS, LAYOUT, final_record, hparam_cell
from normlab.sweep_hparams import differing, experiment_summary

UNITS = {  # a chart's quantity, from its tags
    "accuracy": re.compile(r"(val_acc|/acc$)"),
    "loss": re.compile(r"(val_loss|/loss$|/loss_step$)"),
    "mean_to_batch": re.compile(r"drift_mean_to_batch"),
    "std_to_batch": re.compile(r"drift_std_to_batch"),
    "mean_change": re.compile(r"drift_mean_change"),
    "var_change": re.compile(r"drift_var_change"),
    "population": re.compile(r"z_precise/distance"),
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
            tag.rsplit("_", 1)[-1] for tag in tags if tag.startswith(("z_stats/", "z_precise/d"))
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
    assert HPARAM_METRICS["z_hp/drift_to_batch"] == "z_stats/drift_mean_to_batch_mean"
    assert {"z_hp/epochs", "z_hp/steps", "z_hp/train_images", "z_hp/val_acc"} <= set(HPARAM_METRICS)
    group_run = RecordingLogger()  # a GN run that finished: no drift, precise or divergence tags
    final_record(group_run, 10, {names.VAL_ACC: 0.9, names.TEST_ACC: 0.8, names.STEPS: 10.0})
    assert group_run.logged["z_hp/drift_to_batch"] == 0.0
    assert group_run.logged["z_hp/drift_change"] == 0.0
    assert group_run.logged["z_hp/precise_distance"] == 0.0
    assert group_run.logged["z_hp/diverged_at_step"] == -1.0
    assert group_run.logged["z_hp/val_acc"] == 0.9 and group_run.logged["z_hp/steps"] == 10.0
    bn_run = RecordingLogger()
    final_record(bn_run, 10, {names.DRIFT_TO_BATCH: 0.2, names.DIVERGED_AT_STEP: 7.0})
    assert bn_run.logged["z_hp/drift_to_batch"] == 0.2
    assert bn_run.logged["z_hp/diverged_at_step"] == 7


def test_an_integer_cell_reads_as_an_integer_and_sorts_in_numeric_order():
    """TensorBoard shows a number as 4.0000 and sorts text as text: an integer cell is text
    that sorts as the numbers do; booleans and floats stay as they are, a norm option is
    always text, an unset one n/a."""
    cells = [hparam_cell("batch_size", b) for b in (128, 2, 32, 8)]
    assert all(isinstance(c, str) for c in cells)
    assert [c.strip() for c in sorted(cells)] == ["2", "8", "32", "128"]
    assert hparam_cell("lr", 0.1) == 0.1 and hparam_cell("deterministic", True) is True
    assert hparam_cell("norm.momentum", 0.1) == "0.1" and hparam_cell("norm.affine", True) == "True"
    assert hparam_cell("norm.num_groups", 32).strip() == "32"
    assert hparam_cell("norm.group_size", None) == "n/a"


def test_a_sweep_lists_only_the_columns_that_differ():
    runs = [
        {"norm": "batch", "batch_size": 4, "dataset": "cifar10", "norm.num_groups": "n/a"},
        {"norm": "group", "batch_size": 4, "dataset": "cifar10", "norm.num_groups": 8},
        {"norm": "group", "batch_size": 16, "dataset": "cifar10"},
    ]
    assert differing(runs) == ["norm", "batch_size", "norm.num_groups"]
    assert differing(runs[1:2]) == []
    data = plugin_data_pb2.HParamsPluginData.FromString(
        experiment_summary(runs)[0].value[0].metadata.plugin_data.content
    )
    infos = {h.name: h for h in data.experiment.hparam_infos}
    assert set(infos) == {"norm", "batch_size", "norm.num_groups"}
    assert all(h.differs for h in infos.values())
    domain = infos["batch_size"].domain_discrete.values
    assert [v.string_value.strip() for v in domain] == ["4", "16"]
    names_shown = [m.display_name for m in data.experiment.metric_infos]
    assert names_shown[0] == "val_acc" and "z_hp/val_acc" not in names_shown
