"""Each member's best.ckpt, in its own run folder: its weights at its best validation."""

from pathlib import Path

import pytorch_lightning as pl

from normlab.pack.module import PackedClassifier, member_tag
from normlab.run.identity import RunIdentity
from normlab.run.resume import IDENTITY_KEY, AtomicCheckpointIO, read_checkpoint


def member_weights(pl_module: PackedClassifier, k: int) -> dict:
    """Member k's weights under the keys of a solo run's Classifier (``model.<name>``)."""
    state = pl_module.model.members[k].state_dict()
    return {f"model.{name}": value.detach().clone() for name, value in state.items()}


class MemberCheckpoints(pl.Callback):
    """After each validation (and the pack's divergence check), writes member k's weights to
    ``<run_dirs[k]>/checkpoints/best.ckpt`` when its `monitor` improved, never for a diverged
    member. The file holds what a solo run's best.ckpt holds for testing (``state_dict``, its
    identity, ``global_step``, ``epoch``) and ``packed_with``; no optimizer or loop state: a
    pack resumes from its own last.ckpt."""

    def __init__(
        self,
        run_dirs: list[Path],
        identities: list[RunIdentity],
        pack: str,
        monitor: str,
        mode: str,
    ):
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

    def on_validation_end(self, trainer, pl_module: PackedClassifier) -> None:
        if trainer.sanity_checking:
            return
        pl_module.check_finite()
        for k in range(len(self.run_dirs)):
            score = trainer.callback_metrics.get(member_tag(k, self.monitor))
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

    def load_best(self, pl_module: PackedClassifier) -> list[bool]:
        """Loads each member's best weights into the pack (for testing); whether it had one."""
        found = []
        for k, member in enumerate(pl_module.model.members):
            path = self.path(k) if k in self.best else None
            if path is None or not path.is_file():
                found.append(False)
                continue
            state = read_checkpoint(path)["state_dict"]
            member.load_state_dict({n.removeprefix("model."): v for n, v in state.items()})
            found.append(True)
        return found

    def state_dict(self) -> dict:
        return {"best": dict(self.best)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = {int(k): v for k, v in state_dict["best"].items()}
