"""What the normlab norm layers share: the statistics helpers and the running-stat base.

Every layer computes y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta with plain tensor
operations. They differ only in which axes E and Var are taken over.
"""

import math

import torch
from torch import Tensor, nn


def compute_dtype(x: Tensor) -> torch.dtype:
    """float32 for float16/bfloat16 input (as torch's opmath), else the input's own dtype."""
    return torch.promote_types(x.dtype, torch.float32)


def output_dtype(x: Tensor, fp32_under_cuda_autocast: bool = False) -> torch.dtype:
    """The dtype torch.nn returns.

    CUDA autocast lists group_norm and layer_norm among the ops that run in float32, so their
    output is float32 there; everywhere else a norm returns its input's dtype.
    """
    if fp32_under_cuda_autocast and x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return compute_dtype(x)
    return x.dtype


def normalize(
    x: Tensor,
    mean: Tensor,
    var: Tensor,
    eps: float,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    shape: list[int] | None = None,
) -> Tensor:
    """(x - mean) / sqrt(var + eps) * gamma + beta, in the statistics' dtype.

    gamma and beta are viewed as `shape` to broadcast. 1/sqrt(var + eps) * gamma is folded
    into one small tensor first, so the full-size work is one subtract, one multiply, one add;
    x - mean stays first, which keeps large-mean inputs exact.
    """
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = scale * weight.view(shape or weight.shape).to(scale.dtype)
    y = (x.to(mean.dtype) - mean) * scale
    if bias is not None:
        y = y + bias.view(shape or bias.shape).to(y.dtype)
    return y


def register_affine(module: nn.Module, shape, enabled: bool, bias: bool, factory: dict) -> None:
    """`weight` (gamma) and `bias` (beta) parameters of `shape`, or None, under torch's names."""
    weight = nn.Parameter(torch.empty(shape, **factory)) if enabled else None
    module.register_parameter("weight", weight)
    module.register_parameter(
        "bias", nn.Parameter(torch.empty(shape, **factory)) if enabled and bias else None
    )


def reset_affine(module: nn.Module) -> None:
    """gamma = 1, beta = 0."""
    if module.weight is not None:
        nn.init.ones_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def values_per_statistic(x: Tensor, dims: tuple[int, ...]) -> int:
    return math.prod([x.shape[d] for d in dims])  # a list: torch.compile traces it, not a generator


class RunningStatsNorm(nn.Module):
    """Options, affine parameters and running-stat buffers shared by BatchNorm and InstanceNorm.

    Names and state_dict layout are torch.nn's `_NormBase`, so checkpoints interchange.
    Callbacks find running-stat layers through this class.
    """

    _version = 2

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
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        register_affine(self, num_features, affine, bias, factory)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        reset_affine(self)

    @torch.no_grad()
    def update_running_stats(self, mean: Tensor, var: Tensor, factor: float | Tensor) -> None:
        """M_new = (1 - factor) * M_old + factor * stat, in place (CUDA-graph safe).

        `var` must already be the unbiased estimate.
        """
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype) * factor)
        self.running_var.mul_(1 - factor).add_(var.to(self.running_var.dtype) * factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs) -> None:
        # Checkpoints older than torch's version 2 have no num_batches_tracked: start it at 0.
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)
