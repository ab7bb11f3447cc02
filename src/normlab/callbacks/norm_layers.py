"""Finding norm layers by their running-stat buffers, and probing them without leaving a trace."""

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from normlab.norms.sync import local_statistics


def running_stat_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every module that keeps running_mean and running_var (BatchNorm, tracking InstanceNorm).

    Named as in the network: a LightningModule's leading "model." is dropped.
    """
    return {
        name.removeprefix("model."): m
        for name, m in model.named_modules()
        if isinstance(getattr(m, "running_mean", None), Tensor)
        and isinstance(getattr(m, "running_var", None), Tensor)
    }


def eager(model: nn.Module) -> contextlib.AbstractContextManager:
    """The model's uncompiled forward inside (Classifier.eager), so that forward hooks fire."""
    return model.eager() if callable(getattr(model, "eager", None)) else contextlib.nullcontext()


def set_eager(model: nn.Module, on: bool) -> bool | None:
    """Switches a Classifier's own (uncompiled) forward on or off; returns the previous
    setting, or None for a module without the switch."""
    if not hasattr(model, "eager_forward"):
        return None
    before, model.eager_forward = model.eager_forward, on
    return before


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Restore every buffer bit for bit, and every module's train/eval mode, on exit. Inside, a
    compiled model runs eagerly (probes hook its layers, in modes training does not compile),
    and synced BatchNorm layers use this rank's batch only (a probe runs on one rank)."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        with eager(model), local_statistics():  # a probe runs on one rank: statistics stay local
            yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Running-stat layers normalize with batch statistics (train mode); all else in eval mode.

    Buffers and modes are restored on exit (see `untouched`).
    """
    with untouched(model):
        model.eval()
        for layer in running_stat_layers(model).values():
            layer.train()
        yield


def channel_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of a (N, C, ...) input, in float32: two passes with
    the mean summed in float64, as the norm layers do (torch.var_mean is ~20x slower on a CPU)."""
    x = x.detach().float()
    dims = (0, *range(2, x.dim()))
    mean = x.mean(dims, keepdim=True, dtype=torch.float64).float()
    return mean.flatten(), (x - mean).square_().mean(dims)


def std_units(a_mean, a_var, b_mean, b_var, eps: float) -> tuple[float, float]:
    """RMS over channels of |mean_a - mean_b| and |std_a - std_b|, in units of sqrt(var_b + eps)."""
    scale = torch.sqrt(b_var.float() + eps)
    mean_d = (a_mean.float() - b_mean.float()) / scale
    std_d = (a_var.float().clamp_min(0).sqrt() - b_var.float().sqrt()) / scale
    return mean_d.square().mean().sqrt().item(), std_d.square().mean().sqrt().item()
