"""Every metric name in one place: the TensorBoard tags the module and the callbacks log, and
the table of final values that metrics.json, the HPARAMS tab and the report all read."""

import re
from dataclasses import dataclass

# Tags. The question's (val/, train/, test/: Lightning's names) come first in TensorBoard, which
# sorts groups by name; the statistics callbacks' groups start with LATER so that they sort after
# them (metrics.json keys leave it out: json_key). Layer tags take the layer's name (e.g.
# stage2.conv1.norm); summaries over layers end in _mean and _max (callbacks.board.layer_scalars).
LATER = "z_"
VAL_ACC, TEST_ACC = "val/acc", "test/acc"
GAP = LATER + "gap/"
GAP_VAL_ACC_EVAL, GAP_VAL_ACC_TRAIN = GAP + "val_acc_eval", GAP + "val_acc_train"
GAP_VAL_LOSS_EVAL, GAP_VAL_LOSS_TRAIN = GAP + "val_loss_eval", GAP + "val_loss_train"
GAP_ACC, GAP_LOSS = GAP + "acc", GAP + "loss"  # train mode minus eval mode
GAP_GENERALIZATION = GAP + "generalization"  # train/acc - val/acc
GAP_ACTIVATION_LAYER, GAP_ACTIVATION = GAP + "{}/activation_distance", GAP + "activation_distance"
DRIFT_LAYER_PREFIX = LATER + "drift/"
DRIFT_LAYER, DRIFT = DRIFT_LAYER_PREFIX + "{}/{}", LATER + "stats/drift_{}"  # (layer, measure)
DRIFT_TO_BATCH = DRIFT.format("mean_to_batch") + "_mean"
DRIFT_CHANGE = DRIFT.format("mean_change") + "_mean"
PRECISE = LATER + "precise/"
PRECISE_MEAN_LAYER, PRECISE_STD_LAYER = PRECISE + "{}/mean_distance", PRECISE + "{}/std_distance"
PRECISE_DISTANCE_PREFIX = PRECISE + "distance"
PRECISE_DISTANCE = PRECISE_DISTANCE_PREFIX + "_mean"
VAL_ACC_POPULATION = PRECISE + "val_acc_population"
EPOCH, LR = "train/epoch", "train/lr"  # Lightning's `epoch` and LearningRateMonitor's lr-SGD
HPARAM = LATER + "hp/"  # the HPARAMS tab's metric columns: HPARAM + Final.column
DIVERGED_AT_STEP = "diverged_at_step"
# What every epoch logs, so what best.ckpt can be chosen by (callbacks.checkpoint.monitor).
EPOCH_METRICS = (VAL_ACC, "val/loss", "train/acc", "train/loss")
EPOCHS, STEPS, TRAIN_IMAGES = "epochs", "steps", "train_images"


LAYER_TAGS = (GAP_ACTIVATION_LAYER, DRIFT_LAYER, PRECISE_MEAN_LAYER, PRECISE_STD_LAYER)
_LAYER_PATTERNS = [re.compile(re.escape(t).replace(re.escape("{}"), "[^/]+(?:/[^/]+)*?") + "$")
                   for t in LAYER_TAGS]  # fmt: skip


def is_layer_tag(tag: str) -> bool:
    """A per-layer tag (drift/<layer>/mean_change, ...): logged, but not a run's record."""
    return any(p.match(tag) for p in _LAYER_PATTERNS)


def json_key(tag: str) -> str:
    """metrics.json's key for a tag: val/acc -> val_acc, z_gap/acc -> gap_acc."""
    return tag.removeprefix(LATER).replace("/", "_")


@dataclass(frozen=True)
class Final:
    """A run's final value: summary.csv column `column` and HPARAMS column HPARAM + `column`
    (when `hparam`), read from tag `tag` (metrics.json key json_key(tag)). `absent`: the documented
    value an HPARAMS cell shows for a run without it (never NaN, which hides the run in the
    parallel-coordinates view); None: the run always has it."""

    column: str
    tag: str
    absent: float | None = None
    hparam: bool = True


FINALS = [
    Final("val_acc", VAL_ACC),
    Final("test_acc", TEST_ACC),
    Final("gap_acc", GAP_ACC),
    Final("gap_loss", GAP_LOSS),
    Final("drift_to_batch", DRIFT_TO_BATCH, absent=0.0),  # no running statistics: no drift
    Final("drift_change", DRIFT_CHANGE, absent=0.0),
    Final("precise_distance", PRECISE_DISTANCE, absent=0.0),
    Final("val_acc_population", VAL_ACC_POPULATION, hparam=False),
    Final("diverged_at_step", DIVERGED_AT_STEP, absent=-1.0),  # -1: did not diverge
    Final("epochs", EPOCHS),
    Final("steps", STEPS),
    Final("train_images", TRAIN_IMAGES),  # steps x SGD batch: how much training a run had
]
