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


def compare_tag_names(a: str, b: str) -> int:
    """TensorBoard's order of tags and of the groups they form (its web app's `compareTagNames`,
    tensorboard/webapp/metrics/views/main_view/common_selectors.ts; the same in the Scalars
    tab): numbers compared as numbers, '/', '_' and digits before other characters, then
    character codes."""
    i = j = 0
    while True:
        if i == len(a):
            return 0 if j == len(b) else -1
        if j == len(b):
            return 1
        if a[i].isdigit() and b[j].isdigit():
            start_a, start_b = i, j
            i, j = number_end(a, i + 1), number_end(b, j + 1)
            x, y = float(a[start_a:i]), float(b[start_b:j])
            if x != y:
                return -1 if x < y else 1
            continue
        if breaks(a[i]) != breaks(b[j]):
            return -1 if breaks(a[i]) else 1
        if not breaks(a[i]) and a[i] != b[j]:
            return -1 if a[i] < b[j] else 1
        i, j = i + 1, j + 1


def breaks(c: str) -> bool:
    return c in "/_" or c.isdigit()


def number_end(s: str, i: int) -> int:
    """Where the number that starts before `i` ends (digits, a fraction, an exponent)."""
    state = "natural"
    while i < len(s):
        c = s[i]
        if state in ("natural", "real") and c in "eE":
            state = "sign"
        elif state == "natural" and c == ".":
            state = "real"
        elif state in ("natural", "real", "exponent") and not c.isdigit():
            break
        elif state == "sign":
            if not (c.isdigit() or c in "+-"):
                break
            state = "exponent"
        i += 1
    return i
