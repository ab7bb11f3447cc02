"""What Hydra writes into a job's folder before normlab sees the job (.hydra/config.yaml,
hydra.yaml, overrides.yaml, and a line or more of the job's log) and the lock's holder, put
back as they were when normlab refuses the job: a refused relaunch leaves its folder
byte-identical.

Hydra's run_job writes those files before it calls the task function, and its callbacks'
on_job_start comes after the writes, so the files are read beforehand: `KeepRefusedFolders`
(a Hydra callback, conf/hydra/default.yaml) reads them when the run or sweep starts, and hands
each job's to this process when the job starts (in a worker process too: the callback travels
with the job). `put_back(run_dir)` restores them.
"""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from normlab.run.lock import LOCK

log = logging.getLogger(__name__)

# The current job's folder and its files as they were before Hydra wrote: {path: bytes, or a
# log's length (Hydra only appends to it), or None for a file that did not exist}.
_before: dict[Path, dict[Path, bytes | int | None]] = {}


def read_job_files(run_dir: Path) -> dict[Path, bytes | int | None]:
    """The files Hydra writes into `run_dir` (its .hydra/, the lock's holder), as they are now,
    and the length of each job log."""
    names = [f".hydra/{n}.yaml" for n in ("config", "hydra", "overrides")] + [LOCK]
    files = {p: (p.read_bytes() if p.is_file() else None) for p in (run_dir / n for n in names)}
    return {**files, **{p: p.stat().st_size for p in sorted(run_dir.glob("*.log"))}}


def put_back(run_dir: Path, lock: bool = True) -> bool:
    """`run_dir`'s Hydra files as they were before this job started (True), where they were
    read (a folder that held no files is left as it is: False); with `lock`, the lock file's
    holder too (not while another process holds it)."""
    before = _before.get(Path(run_dir).resolve())
    if not before or all(content is None for content in before.values()):
        return False
    for path, content in before.items():
        if path.name == LOCK and not lock:
            continue
        if content is None:
            if path.is_file() and path.suffix == ".yaml":
                path.unlink()
        elif isinstance(content, int):
            with path.open("r+b") as log_file:
                log_file.truncate(content)
        else:
            path.write_bytes(content)
    return True


class KeepRefusedFolders(Callback):
    """Reads every existing job folder's Hydra files when the run or sweep starts."""

    def __init__(self) -> None:
        self.files: dict[Path, dict[Path, bytes | int | None]] = {}

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self.read(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        for hydra_dir in sweep.glob("**/.hydra") if sweep.is_dir() else []:
            self.read(hydra_dir.parent)

    def read(self, run_dir: Path) -> None:
        if run_dir.is_dir():
            self.files[run_dir.resolve()] = read_job_files(run_dir)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        run_dir = Path(str(config.hydra.runtime.output_dir)).resolve()
        if run_dir in self.files:
            _before[run_dir] = self.files[run_dir]
