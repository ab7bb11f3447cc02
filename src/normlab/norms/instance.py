"""Instance Normalization (Ulyanov et al. 2016), the same function as torch.nn.InstanceNorm2d."""

import math
import warnings

from torch import Tensor

from normlab.norms.base import (
    RunningStatsNorm,
    compute_dtype,
    normalize,
    output_dtype,
)
from normlab.norms.registry import RunningStats, register
from normlab.norms.standardize import standardize


class InstanceNorm2d(RunningStatsNorm):
    r"""Instance Normalization over (N, C, H, W) or unbatched (C, H, W) input.

    .. math::
        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \cdot \gamma + \beta

    Statistics are taken per sample and channel, over the H * W spatial positions (biased
    variance). With ``track_running_stats``, training also updates the running statistics
    with the batch average of the per-instance mean and unbiased variance,
    M_new = (1 - momentum) * M_old + momentum * stat, and eval normalizes with them.
    ``momentum=None`` is momentum 0: the running statistics never change (unlike BatchNorm,
    it is not a cumulative average). ``num_batches_tracked`` is kept but not advanced.

    Args:
        num_features: C.
        eps: added to the variance. Default 1e-5.
        momentum: factor of the running-average update. Default 0.1.
        affine: learnable per-channel gamma and beta. Default False.
        track_running_stats: keep running statistics for eval. Default False.
        bias: with ``affine``, whether beta exists.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (3, 4):
            raise ValueError(f"expected 3D or 4D input (got {x.dim()}D input)")
        feature_dim = x.dim() - 3
        if x.size(feature_dim) != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={feature_dim} to match num_features"
                    f" ({self.num_features}), but got: {x.size(feature_dim)}."
                )
            warnings.warn(
                f"input's size at dim={feature_dim} does not match num_features. "
                "You can silence this warning by not passing in num_features, "
                "which is not used because affine=False",
                stacklevel=2,
            )
        if x.dim() == 3:
            return self._normalize(x.unsqueeze(0)).squeeze(0)
        return self._normalize(x)

    def _normalize(self, x: Tensor) -> Tensor:
        shape = [1, x.size(1), 1, 1]
        if self.training or not self.track_running_stats:
            n = math.prod(x.shape[2:])
            if n == 1:
                raise ValueError(
                    f"Expected more than 1 spatial element when training, got input size {x.size()}"
                )
            y, mean, var = standardize(x, (2, 3), self.eps, self.weight, self.bias, shape)
            if self.track_running_stats:
                momentum = 0.0 if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1))
                self.update_running_stats(mean.mean((0, 2, 3)), unbiased.mean((0, 2, 3)), momentum)
        else:
            mean = self.running_mean.view(shape).to(compute_dtype(x))
            var = self.running_var.view(shape).to(compute_dtype(x))
            y = normalize(x, mean, var, self.eps, self.weight, self.bias, shape)
        return y.to(output_dtype(x))


@register("instance", title="InstanceNorm", running_stats=RunningStats.optional)
def build_instance(
    num_channels: int,
    spatial_size=None,
    *,
    eps: float = 1e-5,
    momentum: float = 0.1,
    affine: bool = False,
    track_running_stats: bool = False,
    bias: bool = True,
) -> InstanceNorm2d:
    return InstanceNorm2d(num_channels, eps, momentum, affine, track_running_stats, bias=bias)
