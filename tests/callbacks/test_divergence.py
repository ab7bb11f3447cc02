"""StopOnDivergence records the exact step of the first non-finite loss, reading it from the
device only every few steps and at each epoch's last batch."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from normlab.callbacks.divergence import StopOnDivergence


class NanFrom(pl.LightningModule):
    """A linear model whose loss is NaN from training batch `first_nan` (counted from 0) on."""

    def __init__(self, first_nan: int | None):
        super().__init__()
        self.layer, self.first_nan, self.batches = torch.nn.Linear(2, 1), first_nan, 0

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).square().mean()
        if self.first_nan is not None and self.batches >= self.first_nan:
            loss = loss * float("nan")
        self.batches += 1
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(first_nan: int | None, batches: int, every: int, tmp_path):
    data = DataLoader(TensorDataset(torch.randn(batches, 2)), batch_size=1)
    callback = StopOnDivergence(every_n_steps=every)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[callback], default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(NanFrom(first_nan), data)
    return callback, trainer.global_step


@pytest.mark.parametrize(
    ("first_nan", "batches", "recorded", "stopped_at"),
    [
        (7, 30, 8, 10),  # read at step 10: recorded as the step after batch 7, stopped there
        (10, 13, 11, 13),  # read at the epoch's last batch, before its validation
        (0, 30, 1, 5),
        (None, 13, None, 26),  # finite throughout: both epochs run
    ],
)
def test_first_non_finite_step_is_recorded_and_the_run_stops_at_the_next_read(
    first_nan, batches, recorded, stopped_at, tmp_path
):
    callback, global_step = fit(first_nan, batches, 5, tmp_path)
    assert callback.step == recorded
    assert global_step == stopped_at
