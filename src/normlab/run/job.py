"""The job a run is: its settings and folder (Member), whether it is one of a sweep's, and how
its failure is said (the expected ones in one line, without a traceback)."""

import copy
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from normlab.atomic_write import DiskFull
from normlab.config import ConfigError, Settings
from normlab.data import DataUnavailable
from normlab.run.identity import RunIdentity
from normlab.run.lock import RunFolderBusy
from normlab.run.sizes import RunSizes


@dataclass
class Member:
    """One run of a fit of K >= 1 (a solo run, or one of a pack): its settings, its folder, the
    overrides that made it, what its record says besides (`extra`: ``packed_with``), and what
    its settings imply, computed once here: its sizes and its identity."""

    settings: Settings
    run_dir: Path
    overrides: list[str] | None = None
    extra: dict = field(default_factory=dict)
    sizes: RunSizes = field(init=False)
    identity: RunIdentity = field(init=False)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.sizes = RunSizes.of(self.settings)
        self.identity = RunIdentity.of(self.settings, self.sizes.steps_per_epoch)

    def with_extra(self, **extra) -> "Member":
        out = copy.copy(self)
        out.extra = {**self.extra, **extra}
        return out


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
