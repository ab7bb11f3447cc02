"""Files written whole or not at all; a full disk said in one line."""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def written_whole(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at `path` only once it is complete: written into a temporary
    file of its own beside `path`, flushed to disk, then renamed over it (atomic on POSIX within
    a folder). A write that fails or is killed leaves `path` as it was; writers racing on one
    path each finish whole, and the last rename wins."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        partial = Path(f.name)
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
            f.close()
            partial.chmod(0o644)  # a temporary file starts private
            os.replace(partial, path)
        except BaseException as error:
            full = disk_full(error, path.parent)
            partial.unlink(missing_ok=True)
            if full:
                raise DiskFull(path) from None
            raise


class DiskFull(OSError):
    """A write that failed for want of space: one line naming the folder."""

    def __init__(self, path: Path):
        said = (f"{path.parent}: no space left on device (writing {path.name}); allowed: free "
                "some space, or paths.root on another disk")  # fmt: skip
        super().__init__(errno.ENOSPC, said)

    def __str__(self) -> str:
        return self.strerror


# Below this many free bytes a failed write is taken for a full disk: torch.save's zip writer
# says only "[enforce fail at inline_container.cc] unexpected pos", never ENOSPC.
NEARLY_FULL = 1 << 20


def disk_full_in_chain(error: BaseException, folder: Path) -> DiskFull | None:
    """The DiskFull behind `error` (raised by a write into `folder`): one raised by
    written_whole anywhere in its chain (a full disk fails the writes made while handling the
    first failure too: TensorBoard's flush), or `error` itself when it is ENOSPC; else None."""
    seen = error
    while seen is not None:
        if isinstance(seen, DiskFull):
            return seen
        seen = seen.__cause__ or seen.__context__
    if out_of_space(error):
        return DiskFull(Path(folder) / (error.filename or "a file"))
    return None


def out_of_space(error: BaseException) -> bool:
    """An OSError that says so itself (ENOSPC, or a quota's EDQUOT)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether `error`, raised while writing into `folder`, came from a full disk (or quota)."""
    if out_of_space(error):
        return True
    if not isinstance(error, OSError | RuntimeError):
        return False
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL
    except OSError:
        return False
