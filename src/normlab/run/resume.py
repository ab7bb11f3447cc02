"""Resuming a killed run: checkpoints written whole, the checkpoint to start from, and the RNG
state and training time it carries."""

import logging
import random
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from normlab.atomic_write import written_whole
from normlab.errors import ConfigError
from normlab.run.identity import RunIdentity
from normlab.run.record import require_same_settings

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint whole or not at all (`written_whole`: a temporary file beside it,
    flushed to disk, then renamed over it).

    Lightning's own write goes through a temporary file in the system's temp folder, which is a
    copy, not a rename, when that folder is on another filesystem than the run: a kill during the
    copy (preemption, an out-of-memory kill) left a torn last.ckpt.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(path) as f:
            torch.save(checkpoint, f)


def first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


# The checkpoints normlab writes into a run folder: the only files a resume reads there.
CHECKPOINT_NAMES = ("last.ckpt", "best.ckpt")
IDENTITY_KEY = "normlab_identity"  # a checkpoint's identity: {"hash", "settings"}


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, loaded safely (weights_only: plain tensors and containers, no
    code) and memory-mapped (tensors are read only when touched); raises if it cannot be."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def check_fits(
    checkpoint: dict, path, identity: RunIdentity | None, module: torch.nn.Module | None
) -> None:
    """ConfigError unless `checkpoint` is of `identity`'s settings (when it says) and its
    weights fit `module` key for key and shape for shape (each check skipped when None)."""
    own = checkpoint.get(IDENTITY_KEY)
    if own is not None and identity is not None:
        record = {"identity": own.get("hash"), "settings": own.get("settings")}
        require_same_settings(record, identity, Path(path).parent.parent, f"a checkpoint {path}")
    if module is None:
        return
    theirs = {k: tuple(v.shape) for k, v in (checkpoint.get("state_dict") or {}).items()}
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if theirs != ours:
        missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
        shapes = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
        found = [f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", extra),
                                     ("other shape", shapes)) if keys]  # fmt: skip
        raise ConfigError(
            f"ckpt_path={path} does not fit this model ({'; '.join(found)}); allowed: a "
            "checkpoint of this model, norm and dataset"
        )


def checkpoint_to_resume(
    run_dir: Path,
    ckpt_path: str | None,
    identity: RunIdentity | None = None,
    module: torch.nn.Module | None = None,
) -> str | None:
    """`ckpt_path` when given, else the newest readable checkpoint of the run folder (last.ckpt
    unless it is torn), else None: start from scratch. ConfigError, in one line naming the file,
    for a `ckpt_path` that cannot be read safely or does not fit, and for a folder checkpoint of
    other settings.

    Each unreadable checkpoint of the folder is reported in one line and passed over, so a run
    killed while writing one resumes from the one before, or starts again, and never fails for
    good. Only the names normlab writes are read (CHECKPOINT_NAMES). (A run folder whose
    metrics.json says finished is not trained again at all; see run().)
    """
    if ckpt_path:
        try:
            checkpoint = read_checkpoint(Path(ckpt_path))
            int(checkpoint["global_step"])
        except Exception as error:
            raise ConfigError(
                f"ckpt_path={ckpt_path} cannot be read ({first_line(error)}); allowed: "
                "a checkpoint written by normlab or Lightning"
            ) from None
        check_fits(checkpoint, ckpt_path, identity, module)
        return ckpt_path
    readable = {}
    folder = Path(run_dir) / "checkpoints"
    for path in (folder / name for name in CHECKPOINT_NAMES):
        if not path.is_file():
            continue
        try:
            checkpoint = read_checkpoint(path)
            step = int(checkpoint["global_step"])
        except Exception as error:
            log.warning("%s cannot be read, not resuming from it (%s)", path,
                        first_line(error))  # fmt: skip
            continue
        check_fits(checkpoint, path, identity, module)
        if "packed_with" not in checkpoint:  # a packed member's best.ckpt: weights only
            readable[path] = step
    if not readable:
        if folder.is_dir():
            log.warning("no readable checkpoint in %s: training from the start", run_dir)
        return None
    newest = max(readable, key=lambda p: (readable[p], p.name == "last.ckpt"))
    log.info("resuming from %s (step %d)", newest, readable[newest])
    return str(newest)


def purge_step(path: str | None) -> int | None:
    """The first step a run resumed from checkpoint `path` logs anew (None: from scratch): the
    checkpoint's global step + 1, since the epoch-end values at the global step itself were
    logged before the checkpoint was written. The resumed run's TensorBoard writer purges what
    a killed session logged from there on, so each tag holds one point per step."""
    return None if path is None else int(read_checkpoint(Path(path))["global_step"]) + 1


class IdentityInCheckpoint(pl.Callback):
    """Writes the run's identity (normlab.run.identity) into every checkpoint, so a resume can
    tell a checkpoint of other settings."""

    def __init__(self, identity: RunIdentity):
        self.identity = identity

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[IDENTITY_KEY] = {"hash": self.identity.hash, "settings": self.identity.settings}


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


class FitTimeInCheckpoint(pl.Callback):
    """Training seconds summed over the fits of a resumed run (one per process): each
    checkpoint carries the seconds up to its writing, and a resumed fit adds its own to those of
    the checkpoint it started from (the time between that checkpoint and a kill is lost work,
    not counted)."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.before = 0.0  # seconds of the fits before this one
        self.started: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = self.clock()

    def seconds(self) -> float:
        """Training seconds so far, this process's fit included."""
        return self.before + (self.clock() - self.started if self.started is not None else 0.0)

    def state_dict(self) -> dict:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = float(state_dict["seconds"])
