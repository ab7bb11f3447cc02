"""What a run prints: Lightning's messages without its tips, its hardware inventory, deprecation
noise or absolute checkpoint paths (relative to the run folder instead)."""

import logging
import warnings
from pathlib import Path

LIGHTNING_INFO = "pytorch_lightning.utilities.rank_zero"  # where rank_zero_info writes


# Lightning's lines that nobody acts on: tips, and which accelerators exist (train.log names
# the device a run used).
DROPPED = ("💡 Tip", "GPU available:", "TPU available:", "HPU available:")


class RelativePaths(logging.Filter):
    """Drops Lightning's tips and hardware inventory; writes paths under `run_dir` relative
    to it."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.prefix = f"{Path(run_dir).resolve()}/"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(DROPPED):
            return False
        if self.prefix in message:
            record.msg, record.args = message.replace(self.prefix, ""), None
        return True


def quiet_console(run_dir: Path) -> None:
    """Installs the filters for a run in `run_dir` (replacing those of an earlier run)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    logger = logging.getLogger(LIGHTNING_INFO)
    for old in [f for f in logger.filters if isinstance(f, RelativePaths)]:
        logger.removeFilter(old)
    logger.addFilter(RelativePaths(run_dir))
