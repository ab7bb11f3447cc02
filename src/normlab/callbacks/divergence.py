"""Stop a run cleanly at its first non-finite training loss, so a sweep can go on."""

import pytorch_lightning as pl
import torch

from normlab import metric_names as names

NOT_YET = 2**62  # first_bad_step before any non-finite loss


class StopOnDivergence(pl.Callback):
    """Records the step of the first NaN or Inf training loss and asks the trainer to stop.

    No host sync per step: the step of the first non-finite loss is kept on the loss's device
    and read every `every_n_steps` steps and at each epoch's last batch (before its validation
    and checkpoint), so a diverged run stops at most `every_n_steps - 1` steps late.
    """

    def __init__(self, every_n_steps: int = 50):
        self.every_n_steps = every_n_steps
        self.step: int | None = None
        self.first_bad_step: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.step is not None or loss is None:
            return
        finite = torch.isfinite(loss.detach()).all()
        if self.first_bad_step is None or self.first_bad_step.device != loss.device:
            self.first_bad_step = torch.full((), NOT_YET, device=loss.device)
        here = torch.where(finite, NOT_YET, trainer.global_step)
        torch.minimum(self.first_bad_step, here, out=self.first_bad_step)
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if trainer.global_step % self.every_n_steps == 0 or last_batch:
            first = int(self.first_bad_step)
            if first != NOT_YET:
                self.step = first
                trainer.should_stop = True

    @property
    def summary(self) -> dict[str, float]:
        return {} if self.step is None else {names.DIVERGED_AT_STEP: float(self.step)}
