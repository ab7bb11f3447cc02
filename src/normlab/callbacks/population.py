"""Population statistics (PreciseBN, Wu & Johnson 2021) against the EMA running statistics."""

import torch
from torch import Tensor, nn
from typing_extensions import override

from normlab import metric_names as names
from normlab.callbacks.base import RecordingCallback, timed
from normlab.callbacks.board import layer_scalars, log_now
from normlab.callbacks.evaluation import evaluate, model_input
from normlab.callbacks.norm_layers import (
    batch_statistics,
    channel_moments,
    running_stat_layers,
    std_units,
    untouched,
)
from normlab.callbacks.probe import cached_batches, dataset_of, loader_of


@torch.no_grad()
def population_statistics(model: nn.Module, batches, device) -> dict[str, tuple[Tensor, Tensor]]:
    """Each running-stat layer's population mean and variance, estimated on `batches`.

    The layers run in train mode, as in training, and for each layer's input batch B record the
    per-channel mean mu_B and biased variance sigma_B^2. Then, with equal-size batches,

        mu_pop = E[mu_B],    sigma_pop^2 = E[mu_B^2 + sigma_B^2] - E[mu_B]^2,

    the variance of all the values seen, not the average of per-batch variances (which misses the
    spread of the batch means), nor torch's unbiased per-batch n / (n - 1) correction (fvcore's
    precise_bn makes the same choice). The model's buffers and modes are left exactly as found.
    """
    layers = running_stat_layers(model)
    sums = {name: [0.0, 0.0, 0.0] for name in layers}  # sum mu_B, sum (mu_B^2 + sigma_B^2), count

    def recorder(name):
        def hook(layer, args) -> None:
            mean, var = channel_moments(args[0])
            s = sums[name]
            s[0], s[1], s[2] = s[0] + mean, s[1] + mean.square() + var, s[2] + 1

        return hook

    handles = [layer.register_forward_pre_hook(recorder(n)) for n, layer in layers.items()]
    try:
        with batch_statistics(model):
            for x, _ in batches:
                model(model_input(x, model, device))
    finally:
        for handle in handles:
            handle.remove()
    population = {}
    for name, (sum_mean, sum_square, count) in sums.items():
        if count:
            mean = sum_mean / count
            population[name] = (mean, (sum_square / count - mean.square()).clamp_min(0))
    return population


@torch.no_grad()
def install(model: nn.Module, population: dict[str, tuple[Tensor, Tensor]]) -> None:
    """Replace the running statistics with `population`, in place."""
    layers = running_stat_layers(model)
    for name, (mean, var) in population.items():
        layers[name].running_mean.copy_(mean)
        layers[name].running_var.copy_(var)


class PopulationStats(RecordingCallback):
    """Every `every_n_epochs` validations and at the last epoch, estimate the population
    statistics of each running-stat layer on `num_samples` training images (batches of the
    training batch size) and log

    - ``precise/<layer>/mean_distance``, ``std_distance``: RMS over channels of the EMA running
      mean (std) minus the population mean (std), in units of sqrt(var_pop + eps), with summaries
      ``precise/distance_mean`` and ``precise/distance_max`` (of the mean distance);
    - ``precise/val_acc_population``: eval-mode accuracy on up to `val_samples` validation images
      with the population statistics (with the default val_samples = TrainEvalGap's max_samples,
      the same images as ``gap/val_acc_eval``, which uses the EMA statistics).

    With `apply_every_epoch` (PreciseBN recalibration, as fvcore's hook), the population
    statistics replace the running ones before every validation, so validation, checkpoints and
    the next epoch's EMA start from them; the probes above then compare them with themselves.
    With `apply_at_end`, the population statistics replace the running ones when training ends
    and again, for the weights being tested, when testing starts. Otherwise the model's state and
    mode are exactly as before. The training images are read once (with their augmentation,
    seeded) and reused, so every estimate sees the same sample.

    Under DDP the logged probes run on rank zero only; recalibration (apply_every_epoch,
    apply_at_end) runs on every rank, on the same images with the same weights, so every
    replica installs the same statistics.
    """

    def __init__(
        self,
        every_n_epochs: int = 2,
        num_samples: int = 4096,
        val_samples: int | None = None,
        apply_at_end: bool = False,
        apply_every_epoch: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.val_samples = val_samples
        self.apply_at_end = apply_at_end
        self.apply_every_epoch = apply_every_epoch
        self.seed = seed
        self.batch_size: int | None = None
        self.train_set = None

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        loader = loader_of(trainer.train_dataloader)  # kept for on_test_start
        self.train_set, self.batch_size = loader.dataset, loader.batch_size

    def estimate(self, trainer, pl_module) -> dict[str, tuple[Tensor, Tensor]]:
        batches = cached_batches(
            self.train_set, self.batch_size, self.num_samples, shuffle=True, seed=self.seed
        )
        with trainer.precision_plugin.forward_context():
            return population_statistics(pl_module, batches, pl_module.device)

    @override
    @timed
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        wanted = self.apply_every_epoch and not trainer.sanity_checking and self.batch_size
        if wanted and running_stat_layers(pl_module):
            install(pl_module, self.estimate(trainer, pl_module))

    @override
    @timed
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.batch_size is None or not trainer.is_global_zero:
            return
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not last:
            return
        layers = running_stat_layers(pl_module)
        if not layers:
            return
        population = self.estimate(trainer, pl_module)
        mean_d, std_d = {}, {}
        for name, (mean, var) in population.items():
            layer = layers[name]
            mean_d[name], std_d[name] = std_units(
                layer.running_mean, layer.running_var, mean, var, layer.eps
            )
        metrics = layer_scalars(mean_d, names.PRECISE_MEAN_LAYER, names.PRECISE_DISTANCE_PREFIX)
        metrics.update({names.PRECISE_STD_LAYER.format(name): d for name, d in std_d.items()})
        val = cached_batches(dataset_of(trainer.val_dataloaders), self.batch_size, self.val_samples)
        if val:  # none when the validation set is smaller than one training batch (as TrainEvalGap)
            with trainer.precision_plugin.forward_context(), untouched(pl_module):
                pl_module.eval()
                install(pl_module, population)
                eval_batch = loader_of(trainer.val_dataloaders).batch_size or 0
                accuracy = evaluate(pl_module, val, pl_module.device, eval_batch)[0]
            metrics[names.VAL_ACC_POPULATION] = accuracy
        self.summary = metrics
        log_now(trainer, metrics)

    def apply(self, trainer, pl_module) -> None:
        if self.apply_at_end and self.batch_size and running_stat_layers(pl_module):
            install(pl_module, self.estimate(trainer, pl_module))

    @override
    @timed
    def on_fit_end(self, trainer, pl_module) -> None:
        self.apply(trainer, pl_module)

    @override
    @timed
    def on_test_start(self, trainer, pl_module) -> None:
        self.apply(trainer, pl_module)
