"""Batch Renormalization (Ioffe 2017): BatchNorm corrected towards the running statistics."""

import torch
from torch import Tensor

from normlab.norms.base import output_dtype
from normlab.norms.batch import BatchNorm2d
from normlab.norms.registry import RunningStats, check_ranges, register

# The defaults, for the layer, its builder and so norm=batch_renorm alike: the paper's final
# clips, reached by a linear ramp after a warmup of plain BN.
R_MAX, D_MAX, WARMUP_STEPS, RAMP_STEPS = 3.0, 5.0, 500, 5000
RANGES = {
    "r_max": (lambda v: v >= 1, "a number >= 1"),
    "d_max": (lambda v: v >= 0, "a number >= 0"),
    "warmup_steps": (lambda v: v >= 0, "an integer >= 0"),
    "ramp_steps": (lambda v: v >= 0, "an integer >= 0"),
}


def correction(
    mean: Tensor,
    var: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    r_max: Tensor,
    d_max: Tensor,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """r and d from the batch's (mean, var: shape (1, C, 1, 1)) and the running statistics."""
    dtype, shape = mean.dtype, mean.shape
    sigma = torch.sqrt(running_var.to(dtype) + eps).view(shape)
    r = (torch.sqrt(var + eps) / sigma).clamp(1 / r_max, r_max)
    d = ((mean - running_mean.to(dtype).view(shape)) / sigma).clamp(-d_max, d_max)
    return r, d


# Compiled, `correction` is one opaque op. torch.compile's partitioner may otherwise recompute
# r and d in the backward from the running statistics, read after this step has updated them:
# wrong gradients, silently (seen with torch 2.14.1; pytorch/pytorch#197039, an open fix).
opaque_correction = torch.library.custom_op("normlab::renorm_correction", mutates_args=())(
    correction
)


@opaque_correction.register_fake
def _(mean, var, running_mean, running_var, r_max, d_max, eps):
    return torch.empty_like(mean), torch.empty_like(mean)


class BatchRenorm2d(BatchNorm2d):
    r"""Batch Renormalization over (N, C, H, W) input; statistics per C over N, H and W.

    .. math::
        \hat{x} = \frac{x - \mu_B}{\sigma_B} \, r + d, \quad
        r = \mathrm{sg}\Big(\mathrm{clip}_{[1/r_{max},\, r_{max}]} \frac{\sigma_B}{\sigma}\Big),
        \quad d = \mathrm{sg}\Big(\mathrm{clip}_{[-d_{max},\, d_{max}]}
            \frac{\mu_B - \mu}{\sigma}\Big), \quad y = \hat{x} \gamma + \beta

    μ_B and σ_B = sqrt(Var_B + ε) are the batch's (biased variance), μ and σ = sqrt(running_var
    + ε) the running statistics before this batch updates them; sg stops the gradient, so r and
    d are per-channel constants in the backward. With r = 1 and d = 0 it is BatchNorm.

    r_max ramps linearly from 1 and d_max from 0 to their final values over ``ramp_steps``
    training steps after ``warmup_steps`` steps of plain BN (the paper: r_max 1 → 3, d_max
    0 → 5). The step is the layer's own ``num_batches_tracked``, so the ramp resumes with a
    checkpoint. Running statistics update as BatchNorm's; eval normalizes with them.

    Args (beyond BatchNorm2d's; ``track_running_stats`` must be true):
        r_max, d_max: final clipping bounds (r_max >= 1, d_max >= 0).
        warmup_steps: steps with r_max = 1 and d_max = 0.
        ramp_steps: steps of the linear ramp that follows (0: the final bounds at once).
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
        r_max: float = R_MAX,
        d_max: float = D_MAX,
        warmup_steps: int = WARMUP_STEPS,
        ramp_steps: int = RAMP_STEPS,
        sync: bool = False,
    ) -> None:
        if not track_running_stats:
            raise ValueError("batch_renorm needs running statistics: track_running_stats=true")
        check_ranges(RANGES, dict(r_max=r_max, d_max=d_max, warmup_steps=warmup_steps,
                                  ramp_steps=ramp_steps))  # fmt: skip
        super().__init__(
            num_features, eps, momentum, affine, True, device, dtype, bias=bias, sync=sync
        )
        self.r_max, self.d_max = r_max, d_max
        self.warmup_steps, self.ramp_steps = warmup_steps, ramp_steps

    def bounds(self, step: Tensor) -> tuple[Tensor, Tensor]:
        """(r_max, d_max) after `step` training steps (a tensor: no host sync)."""
        step = step.to(torch.float32)
        if self.ramp_steps:
            progress = ((step - self.warmup_steps) / self.ramp_steps).clamp(0, 1)
        else:
            progress = (step >= self.warmup_steps).to(torch.float32)
        return 1 + (self.r_max - 1) * progress, self.d_max * progress

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        shape = [1, self.num_features, 1, 1]
        x_hat, mean, var, n = self.batch_standardize(x, None, None)  # (x − μ_B)/σ_B, backward
        dtype = x_hat.dtype
        with torch.no_grad():  # r and d: per-channel constants (sg)
            r_max, d_max = self.bounds(self.num_batches_tracked)  # steps taken before this one
            correct = opaque_correction if torch.compiler.is_compiling() else correction
            r, d = correct(mean, var, self.running_mean, self.running_var, r_max, d_max, self.eps)
        gamma = 1 if self.weight is None else self.weight.view(shape).to(dtype)
        y = x_hat * (gamma * r) + gamma * d
        if self.bias is not None:
            y = y + self.bias.view(shape).to(dtype)
        self.num_batches_tracked.add_(1)
        factor = self.momentum
        if factor is None:
            factor = 1.0 / self.num_batches_tracked.to(dtype)  # a tensor: no host sync
        self.update_running_stats(mean.flatten(), var.flatten() * (n / (n - 1)), factor)
        return y.to(output_dtype(x))


@register(
    "batch_renorm",
    title="Batch Renorm",
    batch_statistics=True,
    syncs=True,
    running_stats=RunningStats.ema,
    ranges=RANGES,
)
def build_batch_renorm(
    num_channels: int,
    spatial_size=None,
    *,
    eps: float = 1e-5,
    momentum: float | None = 0.1,
    affine: bool = True,
    r_max: float = R_MAX,
    d_max: float = D_MAX,
    warmup_steps: int = WARMUP_STEPS,
    ramp_steps: int = RAMP_STEPS,
    sync: bool = False,
) -> BatchRenorm2d:
    return BatchRenorm2d(
        num_channels,
        eps,
        momentum,
        affine,
        r_max=r_max,
        d_max=d_max,
        warmup_steps=warmup_steps,
        ramp_steps=ramp_steps,
        sync=sync,
    )


__all__ = ["BatchRenorm2d", "build_batch_renorm"]
