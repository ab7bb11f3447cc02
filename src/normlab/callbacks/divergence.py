"""Stop a run cleanly at its first non-finite training loss, validation loss, weight or running
statistic, so a sweep can go on; and checkpoints that are never written of a diverged model."""

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from typing_extensions import override

from normlab import metric_names as names
from normlab.callbacks.base import RecordingCallback

NOT_YET = 2**62  # first_bad_step before any non-finite loss
CHECK_EVERY = 50  # steps between reads of the first non-finite step (solo runs and packs)


class StopOnDivergence(RecordingCallback):
    """Records the step of the first NaN or Inf training loss and asks the trainer to stop; and
    at each validation (before its checkpoints), the same for a non-finite validation loss,
    parameter or buffer (running statistics), which the training loss under batch statistics
    can hide.

    No host sync per step: the step of the first non-finite loss is kept on the loss's device
    and read every `every_n_steps` steps and at each epoch's last batch (before its validation
    and checkpoint), so a diverged run stops at most `every_n_steps - 1` steps late.
    """

    def __init__(self, every_n_steps: int = CHECK_EVERY):
        super().__init__()
        self.every_n_steps = every_n_steps
        self.step: int | None = None
        self.first_bad_step: torch.Tensor | None = None

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.step is not None or loss is None:
            return
        finite = torch.isfinite(loss.detach()).all()
        if self.first_bad_step is None or self.first_bad_step.device != loss.device:
            self.first_bad_step = torch.full((), NOT_YET, device=loss.device)
        here = torch.where(finite, NOT_YET, trainer.global_step)
        torch.minimum(self.first_bad_step, here, out=self.first_bad_step)
        if trainer.global_step % self.every_n_steps == 0 or trainer.is_last_batch:
            first = int(self.first_bad_step)
            if first != NOT_YET:
                self.diverged(trainer, first)

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        if self.step is not None or trainer.sanity_checking:
            return
        loss = trainer.callback_metrics.get("val/loss")
        tensors = [*pl_module.parameters(), *pl_module.buffers()]
        finite = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
        if loss is not None:
            finite.append(torch.isfinite(torch.as_tensor(loss)).all().to(finite[0].device))
        if not bool(torch.stack(finite).all()):
            self.diverged(trainer, trainer.global_step)

    def diverged(self, trainer, step: int) -> None:
        self.step = step
        self.summary = {names.DIVERGED_AT_STEP: float(step)}
        trainer.should_stop = True


class CheckpointUnlessDiverged(ModelCheckpoint):
    """ModelCheckpoint that writes nothing once `divergence` has found the run diverged: a
    best.ckpt or last.ckpt is never a model with NaN or Inf in it. (Lightning runs checkpoint
    callbacks after all others, so the divergence check of a validation comes first.)"""

    def __init__(self, divergence: StopOnDivergence, **options):
        super().__init__(**options)
        self.divergence = divergence

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        if self.divergence.step is None:
            super().on_validation_end(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.divergence.step is None:
            super().on_train_epoch_end(trainer, pl_module)

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's own key, so checkpoints of either class resume into the other."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)
