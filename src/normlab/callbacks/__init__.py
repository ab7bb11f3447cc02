"""Callbacks that make BatchNorm's batch dependence visible in TensorBoard.

- RunningStatsDrift: how the running statistics move and how far they sit from the batch's.
- TrainEvalGap: validation with batch statistics against running statistics.
- PopulationStats: PreciseBN population statistics against the EMA ones.

They find norm layers by their running-stat buffers, never by class.
"""

from normlab.callbacks.drift import RunningStatsDrift
from normlab.callbacks.norm_layers import batch_statistics, running_stat_layers, untouched
from normlab.callbacks.population import PopulationStats, population_statistics
from normlab.callbacks.train_eval_gap import TrainEvalGap

__all__ = [
    "PopulationStats",
    "RunningStatsDrift",
    "TrainEvalGap",
    "batch_statistics",
    "population_statistics",
    "running_stat_layers",
    "untouched",
]
