"""The LightningModule of a pack: Classifier's losses, metrics and optimizer, once per member.

Member k's values are logged under ``member<k>/<tag>`` (normlab.pack.logger gives each
member's TensorBoard run its own, under the solo run's tags). The loss that is backpropagated
is the sum of the members' mean losses, so each member's gradient is its own loss's.
"""

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from normlab.callbacks.divergence import CHECK_EVERY, NOT_YET
from normlab.optim import OptimSettings, grouped_sgd_with_schedule
from normlab.pack.model import PackedModel


def member_tag(k: int, tag: str) -> str:
    return f"member{k}/{tag}"


class PackedClassifier(pl.LightningModule):
    """Image classification with a PackedModel: member k trains with `lrs[k]` and `optims[k]`.

    A member found non-finite (training loss, checked every `divergence_every` steps and at an
    epoch's last batch; or validation loss, weight or running statistic at a validation) is
    recorded in `diverged` (member -> step) and stops: its parameters get no gradient and its
    buffers are put back after every step, so it stays as it was found; the others go on.
    """

    def __init__(
        self,
        model: PackedModel,
        num_classes: int,
        lrs: list[float],
        optims: list[OptimSettings],
        divergence_every: int = CHECK_EVERY,
    ):
        super().__init__()
        self.model = model
        self.lrs, self.optims = list(lrs), list(optims)
        k = len(model)

        def per_member(make):
            return nn.ModuleList(make() for _ in range(k))

        for stage in ("val", "test"):
            setattr(
                self,
                f"{stage}_acc",
                per_member(lambda: MulticlassAccuracy(num_classes, average="micro")),
            )
            setattr(self, f"{stage}_loss", per_member(lambda: MeanMetric(nan_strategy="disable")))
        self.test_images = SumMetric(nan_strategy="disable")
        self.divergence_every = divergence_every
        self.diverged: dict[int, int] = {}
        self.frozen: dict[int, dict[str, Tensor]] = {}
        self.first_bad_step: Tensor | None = None
        self.train_sums: Tensor | None = None  # per member: loss, correct, images this epoch

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def member_losses(self, logits: Tensor, y: Tensor) -> Tensor:
        """(K,) mean cross-entropy of each member; y is (K, B) or (B,) shared."""
        k, b = logits.shape[:2]
        y = y.expand(k, b) if y.dim() == 1 else y
        losses = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return losses.view(k, b).mean(1)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        if isinstance(batch, list):  # the members' DataLoaders' batches (PackedData)
            x, y = torch.stack([xb for xb, _ in batch]), torch.stack([yb for _, yb in batch])
        else:  # already (K, B, ...) and (K, B)
            x, y = batch
        logits = self(x)
        losses = self.member_losses(logits, y)
        with torch.no_grad():
            correct = (logits.argmax(-1) == y).float().sum(1)
            sums = torch.stack(
                [losses.detach() * y.shape[1], correct, torch.full_like(correct, y.shape[1])]
            )
            self.train_sums = sums if self.train_sums is None else self.train_sums + sums
            self.watch_losses(losses.detach())
        every = self.trainer.log_every_n_steps
        if (self.trainer.global_step + 1) % every == 0:  # Lightning's cadence for on_step values
            for k in range(len(self.model)):
                self.log(member_tag(k, "train/loss_step"), losses[k], on_step=True, on_epoch=False)
        return losses.sum()

    def watch_losses(self, losses: Tensor) -> None:
        """Keeps each member's first non-finite training step on the device; read every
        `divergence_every` steps and at the epoch's last batch (no host sync per step)."""
        step = self.trainer.global_step
        if self.first_bad_step is None or self.first_bad_step.device != losses.device:
            self.first_bad_step = torch.full_like(losses, NOT_YET, dtype=torch.long)
        here = torch.where(torch.isfinite(losses), NOT_YET, step)
        torch.minimum(self.first_bad_step, here, out=self.first_bad_step)
        if step % self.divergence_every == 0 or self.trainer.is_last_batch:
            for k, first in enumerate(self.first_bad_step.tolist()):
                if first != NOT_YET and k not in self.diverged:
                    self.member_diverged(k, first)

    def member_diverged(self, k: int, step: int) -> None:
        self.diverged[k] = step
        member = self.model.members[k]
        self.frozen[k] = {n: b.detach().clone() for n, b in member.named_buffers()}
        if len(self.diverged) == len(self.model):
            self.trainer.should_stop = True

    def on_after_backward(self) -> None:
        for k in self.diverged:
            for p in self.model.members[k].parameters():
                p.grad = None  # SGD leaves a parameter without a gradient as it is

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        for k, buffers in self.frozen.items():
            member = self.model.members[k]
            for name, value in buffers.items():
                member.get_buffer(name).copy_(value)
        if batch_idx + 1 == self.trainer.num_training_batches:
            self.log_train_epoch()

    def on_train_epoch_start(self) -> None:
        self.train_sums = None

    def log_train_epoch(self) -> None:
        """Each member's train/loss and train/acc over the epoch, logged at its last batch, so
        that callbacks see them at the epoch's end (as a solo run's)."""
        if self.train_sums is None:
            return
        loss, correct, images = self.train_sums
        for k in range(len(self.model)):
            self.log(member_tag(k, "train/loss"), loss[k] / images[k], on_step=False, on_epoch=True)
            self.log(
                member_tag(k, "train/acc"), correct[k] / images[k], on_step=False, on_epoch=True
            )

    def evaluation_step(self, batch, stage: str) -> None:
        x, y = batch
        logits = self(x)  # x shared: every member sees the same images
        losses = self.member_losses(logits, y)
        for k in range(len(self.model)):
            getattr(self, f"{stage}_acc")[k](logits[k], y)
            getattr(self, f"{stage}_loss")[k].update(losses[k], len(y))
            for name in ("loss", "acc"):
                metric = getattr(self, f"{stage}_{name}")[k]
                self.log(member_tag(k, f"{stage}/{name}"), metric, on_step=False, on_epoch=True)
        if stage == "test":
            self.test_images.update(len(y))
            for k in range(len(self.model)):
                self.log(
                    member_tag(k, "test/images"), self.test_images, on_step=False, on_epoch=True
                )

    def validation_step(self, batch, batch_idx: int) -> None:
        self.evaluation_step(batch, "val")

    def check_finite(self) -> None:
        """After a validation: each member with a non-finite validation loss, weight or buffer
        is recorded diverged at this step (called by MemberCheckpoints before it writes)."""
        for k, member in enumerate(self.model.members):
            if k in self.diverged:
                continue
            loss = self.trainer.callback_metrics.get(member_tag(k, "val/loss"))
            tensors = [
                t for t in (*member.parameters(), *member.buffers()) if t.is_floating_point()
            ]
            finite = all(bool(torch.isfinite(t).all()) for t in tensors)
            if not finite or (loss is not None and not bool(torch.isfinite(loss))):
                self.member_diverged(k, self.trainer.global_step)

    def test_step(self, batch, batch_idx: int) -> None:
        self.evaluation_step(batch, "test")

    def configure_optimizers(self):
        steps, epochs = int(self.trainer.estimated_stepping_batches), self.trainer.max_epochs
        groups = [
            (m.parameters(), lr, o)
            for m, lr, o in zip(self.model.members, self.lrs, self.optims, strict=True)
        ]
        # foreach: one multi-tensor op per group for all of a member's parameters, where the
        # CPU default loops over them in Python, K times over in a pack.
        return grouped_sgd_with_schedule(groups, steps, epochs or 1, foreach=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["normlab_pack_diverged"] = dict(self.diverged)
        checkpoint["normlab_pack_frozen"] = self.frozen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.diverged = {int(k): v for k, v in checkpoint.get("normlab_pack_diverged", {}).items()}
        self.frozen = {int(k): v for k, v in checkpoint.get("normlab_pack_frozen", {}).items()}


__all__ = ["PackedClassifier", "member_tag"]
