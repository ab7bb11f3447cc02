"""Train/eval discrepancy: validation with batch statistics against validation with running ones."""

import torch
from typing_extensions import override

from normlab import metric_names as names
from normlab.callbacks.base import RecordingCallback, timed
from normlab.callbacks.board import layer_scalars, log_now
from normlab.callbacks.evaluation import evaluate, model_input
from normlab.callbacks.norm_layers import (
    batch_statistics,
    running_stat_layers,
    untouched,
)
from normlab.callbacks.probe import cached_batches, dataset_of, loader_of


class TrainEvalGap(RecordingCallback):
    """At each validation (every `every_n_epochs`), on the validation images in full batches of
    the training batch size (all of them but the last partial batch, fewer than one batch; or up
    to `max_samples`), log (the eval-mode pass, whose outputs do not depend on the batch, reads
    the same images in batches of validation's size)

    - ``gap/val_acc_eval``, ``gap/val_loss_eval``: eval mode, running statistics;
    - ``gap/val_acc_train``, ``gap/val_loss_train``: running-stat layers in train mode, batch
      statistics (every buffer is restored bit for bit afterwards);
    - ``gap/acc``, ``gap/loss``: train mode minus eval mode. Both passes see the same images, so
      for norms without running statistics (group, layer, instance untracked) the gap is 0;
    - ``gap/<layer>/activation_distance``: on the first batch, the relative L2 distance
      ||y_batch - y_running|| / ||y_running|| of each running-stat layer's output, both from the
      same input (the layer's input in the eval pass); summaries ``gap/activation_distance_mean``
      and ``_max``;

    and at each training epoch end ``gap/generalization``: train/acc - val/acc.

    Under DDP the probes run on rank zero only, with batch statistics of its own batches
    (synced BatchNorm included: a probe is one rank's).
    """

    def __init__(self, every_n_epochs: int = 1, max_samples: int | None = None):
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.max_samples = max_samples
        self.batch_size: int | None = None

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        self.batch_size = loader_of(trainer.train_dataloader).batch_size

    @override
    @timed
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.batch_size is None or not trainer.is_global_zero:
            return  # under DDP: probed on rank zero's replica, batch statistics of its own
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        dataset = dataset_of(trainer.val_dataloaders)
        batches = cached_batches(dataset, self.batch_size, self.max_samples)
        if not batches:
            return
        eval_batch = loader_of(trainer.val_dataloaders).batch_size or 0  # as val/acc's
        with trainer.precision_plugin.forward_context():
            with untouched(pl_module):
                model, device = pl_module.eval(), pl_module.device
                acc_eval, loss_eval = evaluate(model, batches, device, eval_batch)
            if running_stat_layers(pl_module):
                with batch_statistics(pl_module):
                    acc_train, loss_train = evaluate(pl_module, batches, pl_module.device)
            else:  # no running statistics: train mode is eval mode, the gap 0 by construction
                acc_train, loss_train = acc_eval, loss_eval
        metrics = {
            names.GAP_VAL_ACC_EVAL: acc_eval,
            names.GAP_VAL_LOSS_EVAL: loss_eval,
            names.GAP_VAL_ACC_TRAIN: acc_train,
            names.GAP_VAL_LOSS_TRAIN: loss_train,
            names.GAP_ACC: acc_train - acc_eval,
            names.GAP_LOSS: loss_train - loss_eval,
        }
        with trainer.precision_plugin.forward_context():
            x = model_input(batches[0][0], pl_module, pl_module.device)
            metrics.update(self.activation_distances(pl_module, x))
        self.summary = metrics
        log_now(trainer, metrics)

    @torch.no_grad()
    def activation_distances(self, pl_module, x) -> dict[str, float]:
        layers = running_stat_layers(pl_module)
        inputs, handles = {}, []
        for name, layer in layers.items():
            hook = lambda m, args, name=name: inputs.__setitem__(name, args[0])  # noqa: E731
            handles.append(layer.register_forward_pre_hook(hook))
        try:
            with untouched(pl_module):
                pl_module.eval()(x)
        finally:
            for handle in handles:
                handle.remove()
        distances = {}
        for name, layer in layers.items():
            with untouched(layer):
                y_batch = layer.train()(inputs[name]).float()
                y_running = layer.eval()(inputs[name]).float()
            distance = (y_batch - y_running).norm() / y_running.norm().clamp_min(1e-12)
            distances[name] = distance.item()
        return layer_scalars(distances, names.GAP_ACTIVATION_LAYER, names.GAP_ACTIVATION, empty=0.0)

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        train_acc = trainer.callback_metrics.get("train/acc")
        val_acc = trainer.callback_metrics.get("val/acc")
        if train_acc is not None and val_acc is not None:
            gap = float(train_acc) - float(val_acc)
            self.summary[names.GAP_GENERALIZATION] = gap
            log_now(trainer, {names.GAP_GENERALIZATION: gap})
