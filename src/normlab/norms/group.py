"""Group Normalization (Wu & He 2018), the same function as torch.nn.GroupNorm."""

import math

import torch
from torch import Tensor, nn

from normlab.norms.base import output_dtype, register_affine, reset_affine
from normlab.norms.registry import Column, register
from normlab.norms.standardize import standardize

PAPER_NUM_GROUPS = 32


class GroupNorm(nn.Module):
    r"""Group Normalization.

    .. math::
        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \cdot \gamma + \beta

    The C channels are split into ``num_groups`` groups of C / G consecutive channels.
    Statistics are taken per sample and group, over the group's channels and every spatial
    position: for a (N, C, H, W) input, over (C / G) * H * W values (biased variance).
    Training and eval compute the same function; there are no running statistics.
    G = 1 is LayerNorm with per-channel affine; G = C is InstanceNorm.

    Args:
        num_groups: G; must divide ``num_channels``.
        num_channels: C.
        eps: added to the variance. Default 1e-5.
        affine: learnable per-channel gamma (``weight``) and beta (``bias``).
        bias: with ``affine``, whether beta exists.
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        factory = {"device": device, "dtype": dtype}
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        register_affine(self, num_channels, affine, bias, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_affine(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise RuntimeError(
                f"Expected at least 2 dimensions for input tensor but received {x.dim()}"
            )
        n, c, spatial = x.size(0), x.size(1), list(x.shape[2:])
        if c != self.num_channels:
            raise RuntimeError(
                "Expected weight to be a vector of size equal to the number of channels in "
                f"input, but got weight of shape [{self.num_channels}] and input of shape "
                f"{list(x.shape)}"
            )
        g = self.num_groups
        checked = [n * c // g, g, *spatial]  # what torch's F.group_norm checks
        if torch.Size(checked).numel() // g == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {checked}"
            )
        grouped = [n, g, c // g, math.prod(spatial)]  # statistics over (C / G, H * W)
        shape = [1, g, c // g, 1]  # per-channel gamma, beta in the grouped layout
        y, _, _ = standardize(x, (2, 3), self.eps, self.weight, self.bias, shape, grouped)
        return y.to(output_dtype(x, fp32_under_cuda_autocast=True))

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
            f"affine={self.affine}, bias={self.bias is not None}"
        )


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def resolve_num_groups(
    num_channels: int, num_groups: int | None = None, group_size: int | None = None
) -> int:
    """G from the group count or the channels per group; ValueError names the valid choices."""
    if num_groups is not None and group_size is not None:
        raise ValueError(
            f"group norm takes num_groups or group_size, not both (got num_groups={num_groups}, "
            f"group_size={group_size})"
        )
    valid = divisors(num_channels)
    if group_size is not None:
        if group_size not in valid:
            raise ValueError(
                f"group norm on {num_channels} channels: group_size={group_size} does not divide "
                f"{num_channels}; valid group_size: {valid}"
            )
        return num_channels // group_size
    num_groups = PAPER_NUM_GROUPS if num_groups is None else num_groups
    if num_groups not in valid:
        raise ValueError(
            f"group norm on {num_channels} channels: num_groups={num_groups} does not divide "
            f"{num_channels}; valid num_groups: {valid}"
        )
    return num_groups


def group_size_replaces_num_groups(options: dict) -> dict:
    """A configured group_size replaces num_groups (whose default comes from the model)."""
    if options.get("group_size") is not None:
        options["num_groups"] = None
    return options


@register(
    "group",
    title="GroupNorm",
    option_rule=group_size_replaces_num_groups,
    columns=(
        Column("num_groups", "groups", "groups G (log\N{SUBSCRIPT TWO} scale)",
               (("error_vs_groups.png", "val_error"),)),
        Column("group_size", "channels per group",
               "channels per group (log\N{SUBSCRIPT TWO} scale)",
               (("error_vs_group_size.png", "val_error"),)),
    ),
)  # fmt: skip
def build_group(
    num_channels: int,
    spatial_size=None,
    *,
    num_groups: int | None = None,
    group_size: int | None = None,
    eps: float = 1e-5,
    affine: bool = True,
    bias: bool = True,
) -> GroupNorm:
    """GroupNorm with G = num_groups or C / group_size; the paper's G = 32 when neither is given."""
    groups = resolve_num_groups(num_channels, num_groups, group_size)
    return GroupNorm(groups, num_channels, eps, affine, bias=bias)
