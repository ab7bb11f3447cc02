"""Stop a run cleanly at its first non-finite training loss, so a sweep can go on."""

import pytorch_lightning as pl
import torch


class StopOnDivergence(pl.Callback):
    """At the first NaN or Inf training loss, record the step and ask the trainer to stop.

    The check reads the loss every step (on a GPU, one small device-to-host sync per step).
    """

    def __init__(self):
        self.step: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.step is None and loss is not None and not torch.isfinite(loss).all():
            self.step = trainer.global_step
            trainer.should_stop = True

    @property
    def summary(self) -> dict[str, float]:
        return {} if self.step is None else {"diverged_at_step": float(self.step)}
