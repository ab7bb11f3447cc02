"""Batch Normalization (Ioffe & Szegedy 2015), the same function as torch.nn.BatchNorm1d/2d."""

from torch import Tensor

from normlab.norms.base import (
    RunningStatsNorm,
    compute_dtype,
    normalize,
    output_dtype,
    values_per_statistic,
)
from normlab.norms.registry import RunningStats, register
from normlab.norms.standardize import standardize
from normlab.norms.sync import distributed, sync_standardize


class _BatchNorm(RunningStatsNorm):
    r"""Batch Normalization over a mini-batch.

    .. math::
        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \cdot \gamma + \beta

    Statistics are taken per channel C, over the batch N and every spatial position: for a
    (N, C, H, W) input, over N*H*W values. Var is the biased variance.

    - training: normalize with the batch statistics; with ``track_running_stats`` also update
      ``running_mean`` and ``running_var`` (the latter with the *unbiased* variance) as
      M_new = (1 - momentum) * M_old + momentum * stat, and add 1 to ``num_batches_tracked``.
      ``momentum=None`` makes it a cumulative average, momentum = 1 / num_batches_tracked.
    - eval: normalize with the running statistics when they exist, else with batch statistics.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance. Default 1e-5.
        momentum: factor of the running-average update, or None for a cumulative average.
        affine: learnable per-channel gamma (``weight``, init 1) and beta (``bias``, init 0).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``.
        bias: with ``affine``, whether beta exists.
        sync: training statistics over every rank's batch of a distributed run (SyncBN:
            normlab.norms.sync); a single process, or a probe under ``local_statistics()``,
            uses its own batch.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
        sync: bool = False,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
        self.sync = sync

    def extra_repr(self) -> str:
        return super().extra_repr() + (", sync=True" if self.sync else "")

    def _check_input_dim(self, x: Tensor) -> None:
        raise NotImplementedError

    def batch_standardize(self, x: Tensor, weight, bias) -> tuple[Tensor, Tensor, Tensor, object]:
        """(y, mean, var, n): x normalized with its per-channel batch statistics, over every
        rank's batch when `sync` and distributed; n, the values per statistic (all ranks')."""
        dims = (0, *range(2, x.dim()))
        if self.sync and self.training and distributed():
            return sync_standardize(x, self.eps, weight, bias)
        n = values_per_statistic(x, dims)
        if n == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {x.size()}"
            )
        shape = [1, self.num_features] + [1] * (x.dim() - 2)
        return (*standardize(x, dims, self.eps, weight, bias, shape), n)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if x.size(1) != self.num_features:
            raise RuntimeError(
                f"running_mean should contain {x.size(1)} elements not {self.num_features}"
            )
        factor: float | Tensor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # A tensor, not float(): no host sync, so the step stays CUDA-graph capturable.
                factor = 1.0 / self.num_batches_tracked.to(compute_dtype(x))
        use_batch_stats = self.training or self.running_mean is None
        shape = [1, self.num_features] + [1] * (x.dim() - 2)
        if x.numel() == 0:
            # torch returns x * gamma[0] + beta[0] here, so the autograd graph stays connected.
            y = x.clone()
            y = y * self.weight[0] if self.weight is not None else y
            return y + self.bias[0] if self.bias is not None else y
        if use_batch_stats:
            y, mean, var, n = self.batch_standardize(x, self.weight, self.bias)
            if self.training and self.track_running_stats:
                self.update_running_stats(mean.flatten(), var.flatten() * (n / (n - 1)), factor)
        else:
            mean = self.running_mean.view(shape).to(compute_dtype(x))
            var = self.running_var.view(shape).to(compute_dtype(x))
            y = normalize(x, mean, var, self.eps, self.weight, self.bias, shape)
        return y.to(output_dtype(x))


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L) input; statistics per C over N (and L)."""

    __doc__ += _BatchNorm.__doc__

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    """BatchNorm over (N, C, H, W) input; statistics per C over N, H and W."""

    __doc__ += _BatchNorm.__doc__

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")


@register(
    "batch", title="BatchNorm", batch_statistics=True, syncs=True, running_stats=RunningStats.ema
)
def build_batch(
    num_channels: int,
    spatial_size=None,
    *,
    eps: float = 1e-5,
    momentum: float | None = 0.1,
    affine: bool = True,
    track_running_stats: bool = True,
    bias: bool = True,
    sync: bool = False,
) -> BatchNorm2d:
    return BatchNorm2d(
        num_channels, eps, momentum, affine, track_running_stats, bias=bias, sync=sync
    )


__all__ = ["BatchNorm1d", "BatchNorm2d", "build_batch"]
