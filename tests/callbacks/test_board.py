"""The TensorBoard layout and HPARAMS columns come from the metric-name table."""

import re

from normlab import metric_names as names
from normlab.callbacks.board import ABSENT, HPARAM_METRICS, LAYOUT

UNITS = {  # a chart's quantity, from its tags
    "accuracy": re.compile(r"(val_acc|/acc$)"),
    "loss": re.compile(r"(val_loss|/loss$)"),
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


def test_hparams_columns_include_training_length_and_absent_values_are_documented():
    """README: hp/drift_* and hp/precise_distance are 0 without running statistics,
    hp/diverged_at_step is -1 without divergence."""
    assert HPARAM_METRICS["hp/drift_to_batch"] == "stats/drift_mean_to_batch_mean"
    assert {"hp/epochs", "hp/steps", "hp/train_images", "hp/val_acc"} <= set(HPARAM_METRICS)
    assert ABSENT == {"hp/drift_to_batch": 0.0, "hp/drift_change": 0.0,
                      "hp/precise_distance": 0.0, "hp/diverged_at_step": -1.0}  # fmt: skip
