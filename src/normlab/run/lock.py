"""One process per run folder: an advisory lock that the kernel releases when its holder
exits, however it exits, so a crashed run leaves no stale lock."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only

LOCK = ".lock"


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder."""


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Holds `run_dir`'s lock inside (global rank zero only: the other ranks of a DDP run share
    its folder); RunFolderBusy, in one line, when another process holds it."""
    if rank_zero_only.rank != 0:
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunFolderBusy(
                f"{run_dir} is in use: the run is already going (process {holder}); wait for "
                "it to end, or give this run another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
