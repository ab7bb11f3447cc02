"""Read a run's TensorBoard event files back with TensorBoard's own reader."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2


def accumulator(run_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every scalar tag of the run and its values, in step order."""
    ea = accumulator(run_dir)
    return {tag: [e.value for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def hparams(run_dir: Path) -> tuple[dict, list[str]]:
    """The run's HPARAMS record: {hparam: value} and the metric tags of its columns."""
    content = accumulator(run_dir).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    values = {
        k: v.string_value or v.number_value or v.bool_value
        for k, v in start.session_start_info.hparams.items()
    }
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metrics = [m.name.tag for m in experiment.experiment.metric_infos]
    return values, metrics
