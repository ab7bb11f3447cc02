"""Ghost Batch Normalization (Hoffer et al. 2017): BatchNorm over virtual batches."""

import torch
from torch import Tensor

from normlab.errors import require
from normlab.norms.base import output_dtype
from normlab.norms.batch import BatchNorm2d
from normlab.norms.registry import Column, RunningStats, check_ranges, register
from normlab.norms.standardize import standardize

RANGES = {"virtual_batch_size": (lambda v: v >= 2, "an integer >= 2")}
NORM_BATCH_AXIS = "normalization batch, SGD batch fixed (log\N{SUBSCRIPT TWO} scale)"


class GhostBatchNorm2d(BatchNorm2d):
    r"""BatchNorm whose statistics come from virtual batches of ``virtual_batch_size`` samples.

    .. math::
        y_{k} = \frac{x_{k} - \mathrm{E}[x_{k}]}{\sqrt{\mathrm{Var}[x_{k}] + \epsilon}}
            \cdot \gamma + \beta

    The SGD batch (N, C, H, W) is cut into k = N / v consecutive chunks x_1 … x_k of v samples,
    and each is normalized with its own per-channel statistics (over v, H, W), as BatchNorm run
    on each chunk on its own; the normalization batch is v, the SGD batch N. The running
    statistics update once per chunk, in order, as one BatchNorm that saw the k chunks would:
    with momentum m, M ← (1 − m)^k M + Σ_i m (1 − m)^{k−i} s_i; num_batches_tracked grows by k.
    Eval with running statistics is BatchNorm's. v = N is BatchNorm.

    Args (beyond BatchNorm2d's):
        virtual_batch_size: v; must divide every training batch (a smaller last chunk is
            allowed only outside training, for batch statistics in eval mode).
    """

    def __init__(self, num_features: int, *args, virtual_batch_size: int, **kwargs) -> None:
        check_ranges(RANGES, {"virtual_batch_size": virtual_batch_size})
        super().__init__(num_features, *args, **kwargs)
        self.virtual_batch_size = virtual_batch_size

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        n, v = x.size(0), self.virtual_batch_size
        if (not self.training and self.running_mean is not None) or v >= n:
            return super().forward(x)  # running statistics, or one chunk: BatchNorm
        if n % v:
            if self.training:
                raise ValueError(
                    f"batch of {n} samples: virtual_batch_size={v} must divide it "
                    f"(valid: {[d for d in range(1, n + 1) if n % d == 0]})"
                )
            whole = n - n % v  # eval with batch statistics: the last chunk is smaller
            return torch.cat([self.forward(x[:whole]), super().forward(x[whole:])])
        k, c, hw = n // v, self.num_features, x[0, 0].numel()
        if v * hw == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got chunks of {v} "
                f"samples of size {tuple(x.shape[1:])}"
            )
        y, mean, var = standardize(
            x, (1, 3), self.eps, self.weight, self.bias, [1, 1, c, 1], [k, v, c, hw]
        )
        if self.training and self.track_running_stats:
            m = v * hw
            self.update_running_stats_in_order(mean.view(k, c), var.view(k, c) * (m / (m - 1)))
        return y.to(output_dtype(x))

    @torch.no_grad()
    def update_running_stats_in_order(self, means: Tensor, variances: Tensor) -> None:
        """BatchNorm's update, once per chunk (rows of `means`, `variances`), in closed form."""
        k = means.size(0)
        dtype = self.running_mean.dtype
        means, variances = means.to(dtype), variances.to(dtype)
        if self.momentum is None:  # cumulative average over all chunks seen
            seen = self.num_batches_tracked.to(dtype)
            for buffer, stats in ((self.running_mean, means), (self.running_var, variances)):
                buffer.mul_(seen).add_(stats.sum(0)).div_(seen + k)
        else:
            m = self.momentum
            # chunk i's weight m(1 − m)^(k−1−i), made on the device (no host copy per step)
            powers = torch.arange(k - 1, -1, -1, dtype=dtype, device=means.device)
            weights = m * (1 - m) ** powers
            for buffer, stats in ((self.running_mean, means), (self.running_var, variances)):
                buffer.mul_((1 - m) ** k).add_(weights @ stats)
        self.num_batches_tracked.add_(k)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, virtual_batch_size={self.virtual_batch_size}"


def check_virtual_batch(options: dict, batch_size: int) -> None:
    """The virtual batch must be >= 2 and divide the SGD batch (data.batch_size)."""
    divisors = [d for d in range(2, batch_size + 1) if batch_size % d == 0]
    virtual = options["virtual_batch_size"]
    require(
        virtual in divisors,
        "norm.virtual_batch_size",
        virtual,
        f"a divisor >= 2 of the batch: {divisors}",
        f"with data.batch_size={batch_size}",
    )


def virtual_batch(options: dict, batch_size: int) -> int:
    return options["virtual_batch_size"]


@register(
    "ghost_batch",
    title="Ghost BN",
    batch_statistics=True,
    running_stats=RunningStats.optional,
    norm_batch=virtual_batch,
    batch_check=check_virtual_batch,
    ranges=RANGES,
    columns=(
        Column("virtual_batch_size", "virtual batch", NORM_BATCH_AXIS,
               (("error_vs_norm_batch.png", "val_error"), ("gap_vs_norm_batch.png", "gap_points")),
               large_first=True),
    ),
)  # fmt: skip
def build_ghost_batch(
    num_channels: int,
    spatial_size=None,
    *,
    virtual_batch_size: int = 32,
    eps: float = 1e-5,
    momentum: float | None = 0.1,
    affine: bool = True,
    track_running_stats: bool = True,
) -> GhostBatchNorm2d:
    return GhostBatchNorm2d(
        num_channels,
        eps,
        momentum,
        affine,
        track_running_stats,
        virtual_batch_size=virtual_batch_size,
    )


__all__ = ["GhostBatchNorm2d", "build_ghost_batch"]
