"""A sweep's HPARAMS experiment: one summary at the sweep's root, written when the sweep ends
(`SweepHparams`, a Hydra callback in conf/hydra/default.yaml), that lists only the columns whose
value differs among the sweep's runs. TensorBoard reads the first experiment summary it finds,
in no set order, so a sweep's runs write none of their own (a run alone does); until the sweep
ends, TensorBoard derives the table from the runs' rows."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from pytorch_lightning.core.saving import load_hparams_from_yaml
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as tensorboard_hparams

from normlab.callbacks.board import HPARAM_METRICS, describe, hparam_cell

log = logging.getLogger(__name__)
EVENTS = "events.out.tfevents.*"


def run_hparams(sweep_dir: Path) -> list[dict]:
    """Each run's hparams.yaml under `sweep_dir` (the job folders, a pack's members included)."""
    return [
        dict(load_hparams_from_yaml(str(p)) or {}) for p in sorted(sweep_dir.glob("*/hparams.yaml"))
    ]


def differing(runs: list[dict]) -> list[str]:
    """The keys whose value is not the same in every run (a key some run lacks differs), in the
    order the first run lists them."""
    keys = list(dict.fromkeys(k for run in runs for k in run))
    return [k for k in keys if len({repr(run.get(k)) for run in runs}) > 1]


def experiment_summary(runs: list[dict]):
    """The HPARAMS experiment of `runs`: a column per key that differs (every key for one run),
    marked as differing (a column whose cells are of more than one kind is text), text and
    boolean columns with their values as the domain, and the metric columns; and its columns."""
    columns = differing(runs) if len(runs) > 1 else list(runs[0])
    cells = [{k: hparam_cell(k, run.get(k)) for k in columns} for run in runs]
    for k in columns:
        if len({type(c[k]) for c in cells}) > 1:
            for c in cells:
                c[k] = str(c[k])
    discrete = {k: sorted({c[k] for c in cells}) for k in columns
                if not isinstance(cells[0][k], float)}  # fmt: skip
    experiment, _, _ = tensorboard_hparams(
        cells[0], dict.fromkeys(HPARAM_METRICS, 0.0), hparam_domain_discrete=discrete
    )
    return describe(experiment, differs=set(columns)), columns


def write_sweep_experiment(sweep_dir: Path) -> list[str] | None:
    """Write the sweep root's experiment summary (replacing one written before) and return its
    columns (those that differ; every one for a single run); None, writing nothing, when no run
    has started."""
    runs = run_hparams(sweep_dir)
    if not runs:
        return None
    summary, columns = experiment_summary(runs)
    for old in sweep_dir.glob(EVENTS):  # a relaunched sweep's runs may differ in more keys
        old.unlink()
    writer = SummaryWriter(log_dir=str(sweep_dir))
    writer._get_file_writer().add_summary(summary)
    writer.close()
    return columns


class SweepHparams(Callback):
    """At a sweep's end, its HPARAMS experiment at the sweep's root."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            columns = write_sweep_experiment(sweep_dir)
            if columns is not None:
                log.info("HPARAMS columns of the sweep: %s", ", ".join(columns))
