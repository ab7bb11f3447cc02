"""The LightningModule: cross-entropy and accuracy; SGD with its schedule (normlab.optim)."""

from contextlib import contextmanager

import pytorch_lightning as pl
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from normlab.optim import OptimSettings, sgd_with_schedule


class Classifier(pl.LightningModule):
    """Image classification with `model`; logs {train,val,test}/{loss,acc} per epoch,
    train/loss_step every trainer.log_every_n_steps steps, and test/images, the number of test
    images evaluated.

    Under DDP every logged value is the same on every rank: validation and test loss, accuracy
    and count are torchmetrics reduced over all ranks' images (each evaluated once, see
    ImageClassificationData), the training loss and accuracy are synced means over the ranks'
    equal-sized shards.
    """

    def __init__(
        self, model: nn.Module, num_classes: int, lr: float, optim: OptimSettings | None = None
    ):
        super().__init__()
        self.model = model
        self.lr = lr
        self.optim = optim or OptimSettings()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # "disable": no NaN check, which would be a host sync per batch on a GPU.
        self.val_loss = MeanMetric(nan_strategy="disable")  # weighted by batch size
        self.test_loss = MeanMetric(nan_strategy="disable")
        self.test_images = SumMetric(nan_strategy="disable")
        self.eager_forward = False

    def forward(self, x: Tensor) -> Tensor:
        # model.forward is the uncompiled forward of a model compiled in place (normlab.compile).
        return self.model.forward(x) if self.eager_forward else self.model(x)

    @contextmanager
    def eager(self):
        """Inside, the model runs its own forward, uncompiled: forward hooks added later fire,
        and a probe in a mode training never uses (no_grad in train mode) compiles nothing."""
        before, self.eager_forward = self.eager_forward, True
        try:
            yield
        finally:
            self.eager_forward = before

    def shared_step(self, batch, stage: str) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        options = dict(on_step=False, on_epoch=True, prog_bar=True)
        if stage == "train":
            # The batch's accuracy, averaged over the epoch weighted by batch size (= micro
            # accuracy). Not torchmetrics here: its per-step update (with input validation, a
            # torch.unique) cost ~7% of a step on an H200 at batch 32, measured. Synced across
            # ranks at the epoch's end only (no per-step collective).
            accuracy = (logits.argmax(1) == y).float().mean()
            # The per-step curve, every trainer.log_every_n_steps steps (a host read then only);
            # rank zero's batches under DDP (no per-step collective).
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, rank_zero_only=True)
            self.log(f"{stage}/loss", loss, sync_dist=True, **options)
            self.log(f"{stage}/acc", accuracy, sync_dist=True, **options)
            return loss
        getattr(self, f"{stage}_acc")(logits, y)
        getattr(self, f"{stage}_loss").update(loss, len(y))
        self.log(f"{stage}/loss", getattr(self, f"{stage}_loss"), **options)
        self.log(f"{stage}/acc", getattr(self, f"{stage}_acc"), **options)
        if stage == "test":
            self.test_images.update(len(y))
            self.log("test/images", self.test_images, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def configure_optimizers(self):
        steps, epochs = int(self.trainer.estimated_stepping_batches), self.trainer.max_epochs
        return sgd_with_schedule(self.parameters(), self.lr, self.optim, steps, epochs or 1)
