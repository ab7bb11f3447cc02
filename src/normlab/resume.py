"""Resuming a killed run: find the checkpoint its earlier start left behind."""

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def checkpoint_to_resume(run_dir: Path, ckpt_path: str | None) -> str | None:
    """`ckpt_path` when given, else the run folder's last.ckpt when an unfinished start left one.

    (A run folder whose metrics.json says finished is not trained again at all; see run().)
    """
    if ckpt_path:
        return ckpt_path
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("resuming from %s", last)
        return str(last)
    return None
