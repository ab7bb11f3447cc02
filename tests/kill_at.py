"""python tests/kill_at.py POINT [train.py overrides]: train.py, killed with SIGKILL by itself at
POINT of its second epoch (epoch 1), as a preemption or an out-of-memory kill would.

POINT: mid_epoch (half-way through its training batches), between_epochs (its start, after
epoch 0's checkpoints), validation (its first validation batch). KILL_WITH=SIGINT or SIGTERM
in the environment sends that signal instead (Ctrl-C, a scheduler's stop). KILL_EVERY_FIT=1:
every fit that starts from its first epoch is killed once (each pack of a packed sweep), and a
resumed one never, so that relaunching until the command succeeds resumes every pack once.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl

EPOCH = 1


class KillAt(pl.Callback):
    def __init__(self, point: str):
        self.point = point
        self.spared = False

    def on_train_start(self, trainer, pl_module):
        self.spared = trainer.current_epoch > 0 and os.environ.get("KILL_EVERY_FIT") == "1"

    def kill(self, trainer: pl.Trainer, point: str) -> None:
        if self.spared:
            return
        if point == self.point and trainer.current_epoch == EPOCH and not trainer.sanity_checking:
            self.point = None  # once: the signal is handled and the run goes on to its exit
            os.kill(os.getpid(), getattr(signal, os.environ.get("KILL_WITH", "SIGKILL")))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == trainer.num_training_batches // 2:
            self.kill(trainer, "mid_epoch")

    def on_train_epoch_start(self, trainer, pl_module):
        self.kill(trainer, "between_epochs")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.kill(trainer, "validation")


def with_killer(init, point: str):
    def patched(self, *args, callbacks=(), **kwargs):
        init(self, *args, callbacks=[*callbacks, KillAt(point)], **kwargs)

    return patched


if __name__ == "__main__":
    point, overrides = sys.argv[1], sys.argv[2:]
    # Ctrl-C in a terminal raises KeyboardInterrupt; a process started in the background by a
    # non-interactive shell inherits SIGINT ignored, which Python then leaves ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pl.Trainer.__init__ = with_killer(pl.Trainer.__init__, point)
    train = Path(__file__).resolve().parents[1] / "train.py"
    sys.argv = [str(train), *overrides]
    runpy.run_path(str(train), run_name="__main__")
