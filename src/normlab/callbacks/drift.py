"""Running-statistics drift: how fast the EMA buffers move, and how far they sit from the batch."""

import torch
from typing_extensions import override

from normlab import metric_names as names
from normlab.callbacks.base import RecordingCallback, timed
from normlab.callbacks.board import layer_scalars, log_now
from normlab.callbacks.norm_layers import (
    channel_moments,
    running_stat_layers,
    set_eager,
    std_units,
)

DRIFT_METRICS = ("mean_change", "var_change", "mean_to_batch", "std_to_batch")


def relative_change(now: torch.Tensor, before: torch.Tensor) -> float:
    """||now - before|| / ||now||."""
    return ((now - before).norm() / now.norm().clamp_min(1e-12)).item()


class RunningStatsDrift(RecordingCallback):
    """Every `every_n_steps` training steps, for each layer with running statistics, log

    - ``drift/<layer>/mean_change``, ``var_change``: ||M_t - M_prev|| / ||M_t|| of running_mean
      and running_var since the previous log (the first log: since the first step's update,
      so that no run's curve starts with the jump from the initial running_mean = 0);
    - ``drift/<layer>/mean_to_batch``, ``std_to_batch``: RMS over channels of the distance from
      the running mean (std) to this training batch's mean (std), in units of
      sqrt(running_var + eps), both taken just before the layer's own update;

    with summaries ``stats/drift_<metric>_mean`` and ``_max`` across layers. At each epoch end,
    histograms ``drift/<layer>/running_mean`` and ``running_var``.
    """

    def __init__(self, every_n_steps: int = 50, histograms: bool = True):
        super().__init__()
        self.every_n_steps = every_n_steps
        self.histograms = histograms
        self.previous: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.to_batch: dict[str, tuple[float, float]] = {}
        self.handles = []
        self.eager_before: bool | None = None  # a measured step runs uncompiled, so hooks fire

    @override
    def state_dict(self) -> dict:
        return {"previous": self.previous}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.previous = state_dict["previous"]

    @staticmethod
    def snapshot(pl_module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {
            name: (
                layer.running_mean.detach().float().clone(),
                layer.running_var.detach().float().clone(),
            )
            for name, layer in running_stat_layers(pl_module).items()
        }

    def due(self, trainer) -> bool:
        return (trainer.global_step + 1) % self.every_n_steps == 0

    @override
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.due(trainer):
            self.start_measuring(pl_module)

    def start_measuring(self, model) -> None:
        """Hooks on each running-stat layer that measure its training input against its
        running statistics, just before the layer's own update (a compiled forward runs
        eagerly until stop_measuring)."""
        self.to_batch = {}
        self.eager_before = set_eager(model, True)
        for name, layer in running_stat_layers(model).items():
            self.handles.append(layer.register_forward_pre_hook(self.measure_hook(name)))

    def stop_measuring(self, model) -> bool:
        """Removes the hooks; whether there were any (a step was measured)."""
        if self.eager_before is not None:
            set_eager(model, self.eager_before)
            self.eager_before = None
        measured = bool(self.handles)
        for handle in self.handles:
            handle.remove()
        self.handles = []
        return measured

    def measure_hook(self, name: str):
        def hook(layer, args) -> None:
            if layer.training:
                mean, var = channel_moments(args[0])
                self.to_batch[name] = std_units(
                    mean, var, layer.running_mean, layer.running_var, layer.eps
                )

        return hook

    @override
    @timed
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record(trainer, pl_module, measured=self.stop_measuring(pl_module))

    def record(self, trainer, model, measured: bool) -> None:
        """After a training step: the first step's buffers become the reference; a measured
        step logs its drift values."""
        first = not self.previous  # the reference: the first step's update, not the initial
        if first:  # 0/1 buffers (a resumed run keeps the one its checkpoint carried)
            self.previous = self.snapshot(model)
        if not measured:
            return
        now = self.snapshot(model)
        values: dict[str, dict[str, float]] = {m: {} for m in DRIFT_METRICS}
        for name, (mean, var) in now.items():
            if not first and name in self.previous:
                before_mean, before_var = self.previous[name]
                values["mean_change"][name] = relative_change(mean, before_mean)
                values["var_change"][name] = relative_change(var, before_var)
            if name in self.to_batch:
                values["mean_to_batch"][name], values["std_to_batch"][name] = self.to_batch[name]
        self.previous = now
        metrics = {}
        for metric, per_layer in values.items():
            tag, summary = names.DRIFT_LAYER.format("{}", metric), names.DRIFT.format(metric)
            metrics.update(layer_scalars(per_layer, tag, summary))
        layer_tag = names.DRIFT_LAYER_PREFIX
        self.summary = {k: v for k, v in metrics.items() if not k.startswith(layer_tag)}
        log_now(trainer, metrics)

    @override
    @timed
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if not self.histograms or not hasattr(experiment, "add_histogram"):
            return
        for name, layer in running_stat_layers(pl_module).items():
            for buffer in ("running_mean", "running_var"):
                values = getattr(layer, buffer).detach().double()
                # A diverging run has NaN or astronomically large buffers: nothing to bin.
                if torch.isfinite(values).all() and values.abs().max() < 1e30:
                    experiment.add_histogram(
                        names.DRIFT_LAYER.format(name, buffer), values, trainer.global_step
                    )
