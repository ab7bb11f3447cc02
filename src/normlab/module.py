"""The LightningModule of a run of K >= 1 members: cross-entropy and accuracy per member, SGD
with its schedule (normlab.optim) one param group per member, and each member stopped at its
first non-finite value.

A solo run is K = 1: the model is called directly, values are logged under their tags
(``val/acc``). A pack is K > 1 (normlab.pack.model.PackedModel): member k's values are logged
under ``member<k>/<tag>``, and each member's TensorBoard run takes its own back under the solo
tags (callbacks.board.MemberLogger). The loss backpropagated is the sum of the members' mean
losses, so each member's gradient is its own loss's.
"""

from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from normlab.optim import OptimSettings, grouped_sgd_with_schedule

NOT_YET = 2**62  # first_bad_step before any non-finite loss
CHECK_EVERY = 50  # steps between reads of each member's first non-finite step


def member_tag(k: int, tag: str) -> str:
    return f"member{k}/{tag}"


class Classifier(pl.LightningModule):
    """Image classification with `model`: one model (lr and optim one each), or a PackedModel
    of K members (lr and optim lists, member k's at [k]). Logs {train,val,test}/{loss,acc} per
    epoch (micro averages over images), train/loss_step every trainer.log_every_n_steps steps,
    and test/images.

    Under DDP (K = 1) every logged value is the same on every rank: validation and test values
    are torchmetrics reduced over all ranks' images, the training loss and accuracy synced
    means over the ranks' equal-sized shards.

    Divergence: a member's first non-finite training loss is kept on the device and read every
    `divergence_every` steps and at an epoch's last batch (no host sync per step); a non-finite
    validation loss, weight or buffer is found by `check_finite` (called before checkpoints are
    written). A member found is recorded in `diverged` (member -> step) and stops: its
    parameters get no gradient and its buffers are put back after every step; the fit stops
    when every member has.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        lr: float | list[float],
        optim: OptimSettings | list[OptimSettings] | None = None,
        divergence_every: int = CHECK_EVERY,
    ):
        super().__init__()
        self.model = model
        self.lrs = list(lr) if isinstance(lr, list | tuple) else [lr]
        self.optims = optim if isinstance(optim, list) else [optim or OptimSettings()]
        self.members = list(model.members) if len(self.lrs) > 1 else [model]
        k = len(self.members)

        def per_member(make):
            return nn.ModuleList(make() for _ in range(k))

        for stage in ("val", "test"):
            accuracy = per_member(lambda: MulticlassAccuracy(num_classes, average="micro"))
            setattr(self, f"{stage}_acc", accuracy)
            # "disable": no NaN check, which would be a host sync per batch on a GPU.
            setattr(self, f"{stage}_loss", per_member(lambda: MeanMetric(nan_strategy="disable")))
        self.test_images = SumMetric(nan_strategy="disable")
        self.eager_forward = False
        self.divergence_every = divergence_every
        self.diverged: dict[int, int] = {}
        self.frozen: dict[int, dict[str, Tensor]] = {}
        self.first_bad_step: Tensor | None = None
        self.step_losses: Tensor | None = None
        self.train_sums: Tensor | None = None  # per member: loss, correct, images this epoch

    def tag(self, k: int, tag: str) -> str:
        """Member k's name of a logged value: the tag itself in a solo run."""
        return tag if len(self.members) == 1 else member_tag(k, tag)

    def forward(self, x: Tensor) -> Tensor:
        # model.forward is the uncompiled forward of a model compiled in place (normlab.compile).
        return self.model.forward(x) if self.eager_forward else self.model(x)

    def member_logits(self, x: Tensor) -> Tensor:
        """(K, B, C): member k's logits at [k]."""
        out = self(x)
        return out[None] if len(self.members) == 1 else out

    @contextmanager
    def eager(self):
        """Inside, the model runs its own forward, uncompiled: forward hooks added later fire,
        and a probe in a mode training never uses (no_grad in train mode) compiles nothing."""
        before, self.eager_forward = self.eager_forward, True
        try:
            yield
        finally:
            self.eager_forward = before

    def member_losses(self, logits: Tensor, y: Tensor) -> Tensor:
        """(K,) mean cross-entropy of each member; y is (K, B)."""
        k, b = logits.shape[:2]
        losses = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return losses.view(k, b).mean(1)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        if isinstance(batch, list) and isinstance(batch[0], list | tuple):  # members' loaders
            x, y = torch.stack([xb for xb, _ in batch]), torch.stack([yb for _, yb in batch])
        else:  # (K, B, ...) and (K, B) resident batches of a pack, or one run's (B, ...), (B,)
            x, y = batch
        logits = self.member_logits(x)
        y = y.expand(len(logits), -1) if y.dim() == 1 else y
        losses = self.member_losses(logits, y)
        with torch.no_grad():
            correct = (logits.argmax(-1) == y).float().sum(1)
            images = torch.full_like(correct, y.shape[1])
            sums = torch.stack([losses.detach() * y.shape[1], correct, images])
            self.train_sums = sums if self.train_sums is None else self.train_sums + sums
        self.step_losses = losses.detach()
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            for k in range(len(self.members)):  # Lightning's cadence for on_step values
                self.log(self.tag(k, "train/loss_step"), losses[k], on_step=True,
                         on_epoch=False, rank_zero_only=True, prog_bar=True)  # fmt: skip
        return losses.sum()

    def watch_losses(self) -> None:
        """Keeps each member's first non-finite training step on the device; read every
        `divergence_every` steps and at the epoch's last batch."""
        losses, step = self.step_losses, self.trainer.global_step
        if losses is None:
            return
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
        self.frozen[k] = {n: b.detach().clone() for n, b in self.members[k].named_buffers()}
        if len(self.diverged) == len(self.members):
            self.trainer.should_stop = True

    def check_finite(self) -> None:
        """After a validation: each member with a non-finite validation loss, weight or buffer
        is recorded diverged at this step."""
        for k, member in enumerate(self.members):
            if k in self.diverged:
                continue
            loss = self.trainer.callback_metrics.get(self.tag(k, "val/loss"))
            tensors = (*member.parameters(), *member.buffers())
            finite = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
            if loss is not None:
                finite.append(torch.isfinite(torch.as_tensor(loss)).all().to(finite[0].device))
            if not bool(torch.stack(finite).all()):
                self.member_diverged(k, self.trainer.global_step)

    def on_after_backward(self) -> None:
        for k in self.diverged:
            for p in self.members[k].parameters():
                p.grad = None  # SGD leaves a parameter without a gradient as it is

    def on_train_epoch_start(self) -> None:
        self.train_sums = None

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.watch_losses()
        for k, buffers in self.frozen.items():
            for name, value in buffers.items():
                self.members[k].get_buffer(name).copy_(value)
        trainer = self.trainer
        ends = batch_idx + 1 == trainer.num_training_batches or trainer.should_stop
        if ends or 0 < trainer.max_steps <= trainer.global_step:
            self.log_train_epoch()

    def log_train_epoch(self) -> None:
        """Each member's train/loss and train/acc over the epoch, logged at its last batch, so
        that callbacks see them at the epoch's end."""
        if self.train_sums is None:
            return
        loss, correct, images = self.train_sums
        options = dict(on_step=False, on_epoch=True, sync_dist=True, prog_bar=True)
        for k in range(len(self.members)):
            self.log(self.tag(k, "train/loss"), loss[k] / images[k], **options)
            self.log(self.tag(k, "train/acc"), correct[k] / images[k], **options)
        self.train_sums = None  # logged once, also when the fit stops mid-epoch

    def evaluation_step(self, batch, stage: str) -> None:
        x, y = batch
        logits = self.member_logits(x)  # x shared: every member sees the same images
        losses = self.member_losses(logits, y.expand(len(logits), -1))
        options = dict(on_step=False, on_epoch=True, prog_bar=len(self.members) == 1)
        for k in range(len(self.members)):
            getattr(self, f"{stage}_acc")[k](logits[k], y)
            getattr(self, f"{stage}_loss")[k].update(losses[k], len(y))
            for name in ("loss", "acc"):
                metric = getattr(self, f"{stage}_{name}")[k]
                self.log(self.tag(k, f"{stage}/{name}"), metric, **options)
        if stage == "test":
            self.test_images.update(len(y))
            for k in range(len(self.members)):
                self.log(self.tag(k, "test/images"), self.test_images, on_step=False,
                         on_epoch=True)  # fmt: skip

    def validation_step(self, batch, batch_idx: int) -> None:
        self.evaluation_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.evaluation_step(batch, "test")

    def configure_optimizers(self):
        steps, epochs = int(self.trainer.estimated_stepping_batches), self.trainer.max_epochs
        members = zip(self.members, self.lrs, self.optims, strict=True)
        groups = [(m.parameters(), lr, o) for m, lr, o in members]
        # foreach in a pack: one multi-tensor op per group for all of a member's parameters,
        # where the CPU default loops over them in Python, K times over.
        foreach = True if len(self.members) > 1 else None
        return grouped_sgd_with_schedule(groups, steps, epochs or 1, foreach=foreach)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["normlab_pack_diverged"] = dict(self.diverged)
        checkpoint["normlab_pack_frozen"] = self.frozen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.diverged = {int(k): v for k, v in checkpoint.get("normlab_pack_diverged", {}).items()}
        self.frozen = {int(k): v for k, v in checkpoint.get("normlab_pack_frozen", {}).items()}


__all__ = ["CHECK_EVERY", "Classifier", "member_tag"]
