"""The LightningModule: cross-entropy, accuracy, SGD with warmup and a schedule."""

import math
from contextlib import contextmanager
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

SCHEDULES = ("cosine", "step", "constant")
LR_SCALINGS = ("linear", "none")


@dataclass
class LrSchedule:
    """lr multiplier at a step: linear warmup, then cosine decay, step decay or constant."""

    total_steps: int
    warmup_steps: int = 0
    schedule: str = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for "step"
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if self.schedule == "step":
            return self.gamma ** sum(step >= m * self.total_steps for m in self.milestones)
        return 1.0


def check_optim(optim: dict) -> None:
    """Refuse optimizer settings SGD or the schedule cannot use: one ValueError, naming the key
    (optim.<key>), the value and what is allowed."""
    o = optim

    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            raise ValueError(f"optim.{key}={o.get(key)!r}; allowed: {allowed}")

    number = (int, float)
    need(isinstance(o.get("base_lr"), number) and o["base_lr"] >= 0, "base_lr", "a number >= 0")
    base = o.get("base_batch_size", 128)
    need(isinstance(base, int) and base >= 1, "base_batch_size", "an integer >= 1")
    need(o.get("lr_scaling", "linear") in LR_SCALINGS, "lr_scaling", ", ".join(LR_SCALINGS))
    momentum = o.get("momentum", 0.9)
    need(isinstance(momentum, number) and 0 <= momentum < 1, "momentum", "a number in [0, 1)")
    need(not o.get("nesterov", True) or momentum > 0, "nesterov", "false when momentum is 0")
    decay = o.get("weight_decay", 5e-4)
    need(isinstance(decay, number) and decay >= 0, "weight_decay", "a number >= 0")
    need(o.get("schedule", "cosine") in SCHEDULES, "schedule", ", ".join(SCHEDULES))
    warmup = o.get("warmup_epochs", 0)
    need(isinstance(warmup, number) and warmup >= 0, "warmup_epochs", "a number >= 0")
    milestones = list(o.get("milestones", (0.5, 0.75)))
    need(all(isinstance(m, number) and 0 < m < 1 for m in milestones)
         and milestones == sorted(milestones), "milestones",
         "increasing fractions of training in (0, 1)")  # fmt: skip
    gamma = o.get("gamma", 0.1)
    need(isinstance(gamma, number) and 0 < gamma <= 1, "gamma", "a number in (0, 1]")


class Classifier(pl.LightningModule):
    """Image classification with `model`; logs {train,val,test}/{loss,acc} per epoch,
    train/loss_step every trainer.log_every_n_steps steps, and test/images, the number of test
    images evaluated.

    Under DDP every logged value is the same on every rank: validation and test loss, accuracy
    and count are torchmetrics reduced over all ranks' images (each evaluated once, see
    ImageClassificationData), the training loss and accuracy are synced means over the ranks'
    equal-sized shards.
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float, optim: dict):
        super().__init__()
        self.model = model
        self.lr = lr
        self.optim = dict(optim)
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
        o = self.optim
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.lr,
            momentum=o.get("momentum", 0.9),
            nesterov=o.get("nesterov", True),
            weight_decay=o.get("weight_decay", 5e-4),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = min(total, round(o.get("warmup_epochs", 0) * total / epochs))
        schedule = LrSchedule(
            total,
            warmup,
            o.get("schedule", "cosine"),
            tuple(o.get("milestones", (0.5, 0.75))),
            o.get("gamma", 0.1),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
