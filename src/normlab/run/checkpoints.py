"""A run's checkpoints: best.ckpt in each member's run folder, last.ckpt (what a killed run
resumes from) in the run's own; none is ever written of a diverged model."""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from typing_extensions import override

from normlab.module import Classifier
from normlab.run.identity import RunIdentity
from normlab.run.resume import IDENTITY_KEY, AtomicCheckpointIO, read_checkpoint


class CheckpointUnlessDiverged(ModelCheckpoint):
    """ModelCheckpoint that first has the module check every member for non-finite values
    (Classifier.check_finite), and writes nothing once every member has diverged."""

    @override
    def on_validation_end(self, trainer, pl_module: Classifier) -> None:
        if not trainer.sanity_checking:
            pl_module.check_finite()
        if len(pl_module.diverged) < len(pl_module.members):
            super().on_validation_end(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer, pl_module: Classifier) -> None:
        if len(pl_module.diverged) < len(pl_module.members):
            super().on_train_epoch_end(trainer, pl_module)

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's own key, so checkpoints of either class resume into the other."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)


def last_checkpoint(dirpath: Path) -> ModelCheckpoint:
    """Writes last.ckpt at the end of every epoch (after its validation).

    Not ModelCheckpoint(save_last=True): since Lightning 2.6 that writes last.ckpt only when a
    top-k checkpoint is written at the same step, so a run whose validation accuracy stopped
    improving would resume from its best epoch, not its latest.
    """
    return CheckpointUnlessDiverged(dirpath=dirpath, filename="last", enable_version_counter=False)


def member_weights(pl_module: Classifier, k: int) -> dict:
    """Member k's weights under the keys of a solo run's Classifier (``model.<name>``)."""
    state = pl_module.members[k].state_dict()
    return {f"model.{name}": value.detach().clone() for name, value in state.items()}


class MemberCheckpoints(pl.Callback):
    """A pack's best.ckpt: after each validation, member k's weights go to
    ``<run_dirs[k]>/checkpoints/best.ckpt`` when its `monitor` improved, never for a diverged
    member. The file holds what a solo run's best.ckpt holds for testing (``state_dict``, its
    identity, ``global_step``, ``epoch``) and ``packed_with``; no optimizer or loop state: a
    pack resumes from its own last.ckpt."""

    def __init__(self, run_dirs: list[Path], identities: list[RunIdentity], pack: str,
                 monitor: str, mode: str):  # fmt: skip
        self.run_dirs, self.identities, self.pack = run_dirs, identities, pack
        self.monitor, self.mode = monitor, mode
        self.best: dict[int, float] = {}
        self.io = AtomicCheckpointIO()

    def path(self, k: int) -> Path:
        return Path(self.run_dirs[k]) / "checkpoints" / "best.ckpt"

    def better(self, k: int, score: float) -> bool:
        if score != score:  # NaN
            return False
        if k not in self.best:
            return True
        return score > self.best[k] if self.mode == "max" else score < self.best[k]

    @override
    def on_validation_end(self, trainer, pl_module: Classifier) -> None:
        if trainer.sanity_checking:
            return
        pl_module.check_finite()
        for k in range(len(self.run_dirs)):
            score = trainer.callback_metrics.get(pl_module.tag(k, self.monitor))
            if k in pl_module.diverged or score is None or not self.better(k, float(score)):
                continue
            self.best[k] = float(score)
            identity = self.identities[k]
            checkpoint = {
                "state_dict": member_weights(pl_module, k),
                "global_step": trainer.global_step,
                "epoch": trainer.current_epoch,
                IDENTITY_KEY: {"hash": identity.hash, "settings": identity.settings},
                "packed_with": self.pack,
            }
            if trainer.is_global_zero:
                self.io.save_checkpoint(checkpoint, self.path(k))

    def load_best(self, pl_module: Classifier) -> list[bool]:
        """Loads each member's best weights into the pack (for testing); whether it had one."""
        found = []
        for k, member in enumerate(pl_module.members):
            path = self.path(k) if k in self.best else None
            if path is None or not path.is_file():
                found.append(False)
                continue
            state = read_checkpoint(path)["state_dict"]
            member.load_state_dict({n.removeprefix("model."): v for n, v in state.items()})
            found.append(True)
        return found

    @override
    def state_dict(self) -> dict:
        return {"best": dict(self.best)}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.best = {int(k): v for k, v in state_dict["best"].items()}
