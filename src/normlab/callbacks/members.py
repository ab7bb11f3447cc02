"""The statistics callbacks in a pack: each member measured on its own, as its solo run is.

Member k gets its own drift, gap and PreciseBN callbacks (normlab.callbacks, with its own
settings), called with member k's solo model and a view of the pack's Trainer that writes to
member k's TensorBoard run and reads member k's values under the solo tags. Probes run member
k's solo modules (their parameters are its own, their buffers views of the pack's rows), so
they see exactly what a solo run's probes see.

Drift measures a layer's training input against its running statistics just before the
layer's update. Inside the pack's vmapped forward the inputs of all members pass one module,
so on a measured step each member's solo model first runs on its own batch (no gradient,
every buffer restored bit for bit: the same inputs its training forward gives the layers);
the changes of the running statistics are read after the pack's step, as in a solo run.
"""

import torch
from pytorch_lightning import Callback
from torch import Tensor, nn
from typing_extensions import override

from normlab.callbacks.base import timed
from normlab.callbacks.drift import RunningStatsDrift
from normlab.callbacks.evaluation import model_input
from normlab.callbacks.norm_layers import untouched
from normlab.callbacks.probe import loader_of
from normlab.module import member_tag


class MemberModel(nn.Module):
    """Member k's solo model as its solo Classifier holds it (under ``model``, so layers are
    named as in a solo run)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


class MemberTrainer:
    """The pack's Trainer as member k's callbacks see it: member k's logger, its values under
    the solo tags, its own training loader; everything else is the pack's."""

    def __init__(self, trainer, k: int, logger):
        self._trainer, self.k, self.logger = trainer, k, logger

    def __getattr__(self, name: str):
        return getattr(self._trainer, name)

    @property
    def loggers(self) -> list:
        return [self.logger]

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        prefix = member_tag(self.k, "")
        return {
            key.removeprefix(prefix): v
            for key, v in self._trainer.callback_metrics.items()
            if key.startswith(prefix)
        }

    @property
    def train_dataloader(self):
        loader = self._trainer.train_dataloader  # the members' loaders, side by side
        if not isinstance(loader, list | tuple):
            loader = getattr(loader, "loaders", None) or getattr(loader, "flattened", None)
        return loader_of(loader[self.k])


def member_batch(batch, k: int) -> Tensor:
    """Member k's training images from a pack's batch: (K, B, ...) resident data, or the
    members' DataLoaders' K batches."""
    return batch[k][0] if isinstance(batch, list) else batch[0][k]


class MemberStatistics(Callback):
    """`callbacks[k]`: member k's statistics callbacks; each is called with member k's model
    and trainer view, never for a member recorded diverged (a solo run stops there).
    `probe_seconds`: the time spent in its hooks, all members together. Its per-step hooks
    return at once when no member has drift on (callbacks=none)."""

    def __init__(self, models: list[nn.Module], loggers: list, callbacks: list[list[Callback]]):
        self.models = [MemberModel(m) for m in models]
        self.loggers, self.callbacks = loggers, callbacks
        self.drifts = [
            next((c for c in cs if isinstance(c, RunningStatsDrift)), None) for cs in callbacks
        ]
        self.views: list[MemberTrainer] = []  # made once the Trainer is known (setup)
        self.measured: set[int] = set()  # members whose drift measured this step
        self.probe_seconds = 0.0  # in its hooks (the console's epoch line)

    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        self.views = [MemberTrainer(trainer, k, log) for k, log in enumerate(self.loggers)]

    def live(self, pl_module):
        diverged = getattr(pl_module, "diverged", {})
        for k, (model, callbacks) in enumerate(zip(self.models, self.callbacks, strict=True)):
            if k not in diverged:
                yield self.views[k], model, callbacks, k

    def each(self, hook: str, trainer, pl_module, *args) -> None:
        for view, model, callbacks, _ in self.live(pl_module):
            for callback in callbacks:
                getattr(callback, hook)(view, model, *args)

    @override
    @timed
    def on_train_start(self, trainer, pl_module) -> None:
        self.each("on_train_start", trainer, pl_module)

    @override
    @timed
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.measured = set()
        if not any(d is not None and d.due(trainer) for d in self.drifts):
            return
        for view, model, _, k in self.live(pl_module):
            drift = self.drifts[k]
            if drift is None or not drift.due(view):
                continue
            drift.start_measuring(model)
            try:
                forward = trainer.precision_plugin.forward_context()
                with torch.no_grad(), forward, untouched(model):
                    model(model_input(member_batch(batch, k), model, model.device))
            finally:
                if drift.stop_measuring(model):
                    self.measured.add(k)

    @override
    @timed
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not any(self.drifts):
            return
        for view, model, _, k in self.live(pl_module):
            drift = self.drifts[k]
            if drift is not None:
                drift.record(view, model, measured=k in self.measured)

    @override
    @timed
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.each("on_train_epoch_end", trainer, pl_module)

    @override
    @timed
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.each("on_validation_epoch_start", trainer, pl_module)

    @override
    @timed
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.each("on_validation_epoch_end", trainer, pl_module)

    @override
    @timed
    def on_fit_end(self, trainer, pl_module) -> None:
        self.each("on_fit_end", trainer, pl_module)

    @override
    @timed
    def on_test_start(self, trainer, pl_module) -> None:
        self.each("on_test_start", trainer, pl_module)

    @override
    def state_dict(self) -> dict:
        return {"members": [[c.state_dict() for c in cs] for cs in self.callbacks]}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        for callbacks, states in zip(self.callbacks, state_dict["members"], strict=True):
            for callback, state in zip(callbacks, states, strict=True):
                callback.load_state_dict(state)


__all__ = ["MemberStatistics", "MemberTrainer"]
