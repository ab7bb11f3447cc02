"""The LightningModule's logged accuracies are the fraction of images classified correctly."""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from normlab.module import Classifier
from normlab.optim import OptimSettings


def test_epoch_accuracies_are_micro_averages_over_unequal_batches(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    data = TensorDataset(torch.randn(10, 3, 2, 2), torch.randint(0, 3, (10,)))
    loader = DataLoader(data, batch_size=4)  # batches of 4, 4 and 2
    with torch.no_grad():
        expected = (model(data.tensors[0]).argmax(1) == data.tensors[1]).float().mean().item()
    per_batch = [(model(x).argmax(1) == y).float().mean().item() for x, y in loader]
    assert expected != sum(per_batch) / len(per_batch)  # so the weighting is tested
    module = Classifier(model, 3, lr=0.0, optim=OptimSettings(weight_decay=0.0))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    metrics = trainer.callback_metrics
    assert abs(metrics["train/acc"].item() - expected) < 1e-6
    assert abs(metrics["val/acc"].item() - expected) < 1e-6
