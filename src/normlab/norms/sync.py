r"""Batch statistics over every process of a distributed run (SyncBN), with its backward.

Forward, per channel: each rank sums its count n_r, Σx and Σx² (in float64), one all-reduce
gives the global n, μ = Σx / n and σ² = Σx²/n − μ² (biased; float64 keeps the cancellation
below 1e-8 relative for |mean| / std up to 1e4), then as `standardize`: x̂ = (x − μ) r,
r = 1/sqrt(σ² + ε), y = x̂ γ + β. Uneven batches weigh each rank by its n_r.

Backward (standardize's closed form with the sums taken over all ranks): with g = dy·γ,
    dx = r (g − Σ_all g / n − x̂ Σ_all (g x̂) / n),
where Σ_all is one all-reduce of the per-channel Σdy and Σdy·x̂. dγ = Σ dy x̂ and dβ = Σ dy stay
this rank's sums: DDP averages parameter gradients across ranks like every other gradient, and
each rank's dx already carries the other ranks' losses through the shared statistics.
"""

import contextlib
import threading
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor

from normlab.norms.base import compute_dtype

_local = threading.local()


def distributed() -> bool:
    """Whether statistics can span ranks here: a process group of several ranks, outside
    `local_statistics()`."""
    if getattr(_local, "depth", 0):
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def local_statistics() -> Iterator[None]:
    """Inside, synced layers take their statistics from this rank's batch alone: for a probe
    that runs on one rank (the others would never join its all-reduce)."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


class SyncStandardize(torch.autograd.Function):
    """(y, mean, var) of an (N, C, ...) input normalized per channel over every rank's batch."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, group):
        dtype = compute_dtype(x)
        dims = (0, *range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        x64 = x.detach().to(torch.float64)
        here = torch.full((x.size(1),), x.numel() / x.size(1), dtype=torch.float64, device=x.device)
        sums = torch.stack([here, x64.sum(dims), x64.square().sum(dims)])
        dist.all_reduce(sums, group=group)
        n, total, total_sq = sums
        mean64 = total / n
        var = (total_sq / n - mean64.square()).clamp_min(0).to(dtype)
        mean = mean64.to(dtype)
        rstd = torch.rsqrt(var + eps)
        x_hat = (x.to(dtype) - mean.view(shape)) * rstd.view(shape)
        y = x_hat if weight is None else x_hat * weight.view(shape).to(dtype)
        if bias is not None:
            y = y + bias.view(shape).to(dtype)
        ctx.save_for_backward(x_hat, rstd, weight)
        ctx.n, ctx.group, ctx.has_bias, ctx.x_dtype = n[0], group, bias is not None, x.dtype
        count = n[0].to(dtype)
        ctx.mark_non_differentiable(mean, var, count)
        return y, mean, var, count

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar, _dcount):
        x_hat, rstd, weight = ctx.saved_tensors
        dims = (0, *range(2, x_hat.dim()))
        shape = [1, -1] + [1] * (x_hat.dim() - 2)
        dy = dy.to(x_hat.dtype)
        local = torch.stack([dy.sum(dims), (dy * x_hat).sum(dims)])  # Σdy, Σdy·x̂ here
        d_bias = local[0].clone() if ctx.has_bias else None
        d_weight = local[1].clone() if weight is not None else None
        dist.all_reduce(local, group=ctx.group)
        sum_dy, sum_dy_xhat = local / ctx.n.to(local.dtype)  # means over every rank's values
        scale = rstd if weight is None else rstd * weight.to(rstd.dtype)
        dx = (dy - sum_dy.view(shape) - x_hat * sum_dy_xhat.view(shape)) * scale.view(shape)
        if d_weight is not None:
            d_weight = d_weight.to(weight.dtype)
        if d_bias is not None:
            d_bias = d_bias.to(weight.dtype if weight is not None else dy.dtype)
        return dx.to(ctx.x_dtype), d_weight, d_bias, None, None


def sync_standardize(x: Tensor, eps: float, weight=None, bias=None, group=None):
    """(y, mean, var, count): y normalized with per-channel statistics over every rank's batch;
    mean and var (biased), shaped (1, C, 1, ...), and the global count of values per channel,
    detached, for the running statistics. No host sync."""
    y, mean, var, count = SyncStandardize.apply(x, weight, bias, eps, group)
    shape = [1, -1] + [1] * (x.dim() - 2)
    return y, mean.view(shape), var.view(shape), count
