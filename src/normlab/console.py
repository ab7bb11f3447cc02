"""What a run prints: one line per epoch (EpochLine), and Lightning's messages without its tips,
its hardware inventory, checkpoint-loading chatter, deprecation noise or absolute checkpoint
paths (relative to the run folder instead)."""

import logging
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
from tqdm import tqdm
from typing_extensions import override

log = logging.getLogger(__name__)

LIGHTNING_INFO = "pytorch_lightning.utilities.rank_zero"  # where rank_zero_info writes


# Lightning's lines that nobody acts on: tips, which accelerators exist (train.log names the
# device a run used); in a sweep also its loading and stopping chatter (normlab says when a run
# resumes, and each run's epoch lines and result line say the rest).
DROPPED = ("💡 Tip", "GPU available:", "TPU available:", "HPU available:")
DROPPED_IN_SWEEP = (
    "Loading `train_dataloader` to estimate",
    "Restoring states from the checkpoint",
    "Restored all states from the checkpoint",
    "Loaded model weights from the checkpoint",
    "`Trainer.fit` stopped",
)


class RelativePaths(logging.Filter):
    """Drops Lightning's tips and hardware inventory (in a sweep, DROPPED_IN_SWEEP too);
    writes paths under `run_dir` relative to it."""

    def __init__(self, run_dir: Path, sweep: bool = False):
        super().__init__()
        self.prefix = f"{Path(run_dir).resolve()}/"
        self.dropped = DROPPED + (DROPPED_IN_SWEEP if sweep else ())

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.dropped):
            return False
        if self.prefix in message:
            record.msg, record.args = message.replace(self.prefix, ""), None
        return True


def quiet_console(run_dir: Path, sweep: bool = False) -> None:
    """Installs the filters for a run in `run_dir`, one of a sweep's or not (replacing those
    of an earlier run)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # normlab sets the interval for the dataset's full epoch (normlab.log_interval)
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")
    logger = logging.getLogger(LIGHTNING_INFO)
    for old in [f for f in logger.filters if isinstance(f, RelativePaths)]:
        logger.removeFilter(old)
    logger.addFilter(RelativePaths(run_dir, sweep))


class EpochLine(pl.Callback):
    """One console line per training epoch, after its validation and probes:

        epoch 2/5: train/loss 0.412, val/acc 0.8712, val/loss 0.361; 41.2 s, probes 3.1 s

    `probes`: the time the statistics callbacks spent in their hooks this epoch (any callback
    with a `probe_seconds` total). A pack's line gives its members' range: val/acc 0.85–0.88.
    """

    TAGS = ("train/loss", "val/acc", "val/loss")

    def __init__(self) -> None:
        self.started = 0.0
        self.probes_before = 0.0

    @staticmethod
    def probe_total(trainer) -> float:
        return sum(getattr(c, "probe_seconds", 0.0) for c in trainer.callbacks)

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()
        self.probes_before = self.probe_total(trainer)

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        values = []
        for tag in self.TAGS:
            found = [float(v) for k, v in trainer.callback_metrics.items()
                     if k == tag or k.endswith(f"/{tag}") and k.startswith("member")]  # fmt: skip
            if len(found) == 1:
                values.append(f"{tag} {found[0]:.4g}")
            elif found:
                values.append(f"{tag} {min(found):.4g}–{max(found):.4g}")
        seconds = time.perf_counter() - self.started
        probes = self.probe_total(trainer) - self.probes_before
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        with tqdm.external_write_mode():  # a progress bar on the line moves aside first
            log.info("epoch %d%s: %s; %.1f s, probes %.1f s", trainer.current_epoch + 1, epochs,
                     ", ".join(values) or "no values yet", seconds, probes)  # fmt: skip
