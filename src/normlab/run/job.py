"""The Hydra job a run is: its folder, whether it is one of a sweep's, and how its failure is
said (the expected ones in one line, without a traceback)."""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from normlab.atomic_write import DiskFull
from normlab.config import ConfigError
from normlab.data import DataUnavailable
from normlab.run.lock import RunFolderBusy


def output_dir(root: str) -> Path:
    """Hydra's run folder; outside Hydra, <paths.root>/runs/direct."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(root) / "runs" / "direct"


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def failure_message(error: Exception) -> tuple[str, bool]:
    """(the line that says what failed, whether it is an expected failure: bad config, missing
    data, a busy run folder, a full disk; those are said without a traceback)."""
    expected = isinstance(error, ConfigError | DataUnavailable | RunFolderBusy | DiskFull)
    return (f"{error}" if expected else f"{type(error).__name__}: {error}"), expected
