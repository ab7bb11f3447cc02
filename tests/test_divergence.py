"""The Classifier records the exact step of a member's first non-finite loss, reading it from
the device only every few steps and at each epoch's last batch, and stops the fit when every
member has diverged."""

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from normlab.module import Classifier


class NanFrom(nn.Module):
    """A linear model whose logits are NaN from training batch `first_nan` (counted from 0) on."""

    def __init__(self, first_nan: int | None):
        super().__init__()
        self.layer, self.first_nan, self.batches = nn.Linear(2, 2), first_nan, 0

    def forward(self, x):
        out = self.layer(x)
        if self.training:
            if self.first_nan is not None and self.batches >= self.first_nan:
                out = out * float("nan")
            self.batches += 1
        return out


def fit(first_nan: int | None, batches: int, every: int, tmp_path):
    data = DataLoader(TensorDataset(torch.randn(batches, 2), torch.zeros(batches).long()))
    module = Classifier(NanFrom(first_nan), 2, lr=0.01, divergence_every=every)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, data)
    return module, trainer.global_step


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
    module, global_step = fit(first_nan, batches, 5, tmp_path)
    assert module.diverged.get(0) == recorded
    assert global_step == stopped_at
