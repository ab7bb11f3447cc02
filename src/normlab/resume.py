"""Resuming a killed run: the checkpoint to start from, and the RNG state it carries."""

import logging
import random
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

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


def rng_states() -> dict:
    """The global RNG states, in types that torch.load(weights_only=True) accepts."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, key.tolist(), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    kind, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(key, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngStateInCheckpoint(pl.Callback):
    """Saves the global RNG states (torch, CUDA, numpy, python) in every checkpoint and, after
    a resume, restores them at the start of the first training epoch.

    Checkpoints are written at the end of each training epoch (after its validation), after
    which an uninterrupted run draws nothing before its next epoch starts, whereas a resumed run
    draws in between (its sanity-check validation): hence the restore there, not at load. The
    data side does not depend on these states at all (see EpochSeededSampler); they matter for
    randomness in the model, such as dropout.
    """

    def __init__(self):
        self.pending: dict | None = None

    def state_dict(self) -> dict:
        return rng_states()

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending = state_dict

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pending is not None:
            set_rng_states(self.pending)
            self.pending = None
