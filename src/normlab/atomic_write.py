"""Files written whole or not at all."""

import os
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
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
