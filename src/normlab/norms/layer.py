"""Layer Normalization (Ba et al. 2016), the same function as torch.nn.LayerNorm."""

import numbers
from enum import Enum

from torch import Tensor, nn

from normlab.norms.base import output_dtype, register_affine, reset_affine
from normlab.norms.group import GroupNorm
from normlab.norms.registry import register
from normlab.norms.standardize import standardize


class LayerNorm(nn.Module):
    r"""Layer Normalization over the last ``len(normalized_shape)`` dimensions.

    .. math::
        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \cdot \gamma + \beta

    Statistics are taken per sample over the trailing ``normalized_shape`` dimensions (biased
    variance), identically in training and eval. For a (N, C, H, W) feature map,
    ``normalized_shape = (C, H, W)`` normalizes each sample over C, H and W; the affine gamma and
    beta then have shape (C, H, W), one per element.

    Args:
        normalized_shape: int or sequence, the trailing input shape to normalize over.
        eps: added to the variance. Default 1e-5.
        elementwise_affine: learnable gamma (``weight``, init 1) and beta (``bias``, init 0).
        bias: with ``elementwise_affine``, whether beta exists.
    """

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        register_affine(self, self.normalized_shape, elementwise_affine, bias, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_affine(self)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if tuple(x.shape[x.dim() - k :]) != self.normalized_shape or x.dim() < k:
            expected = ", ".join(str(s) for s in self.normalized_shape)
            raise RuntimeError(
                f"Given normalized_shape={list(self.normalized_shape)}, expected input with "
                f"shape [*, {expected}], but got input of size{list(x.shape)}"
            )
        y, _, _ = standardize(x, tuple(range(-k, 0)), self.eps, self.weight, self.bias)
        return y.to(output_dtype(x, fp32_under_cuda_autocast=True))

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class LayerAffine(Enum):
    """LayerNorm's affine parameters: over (C, H, W) as torch.nn, per channel, or none."""

    elementwise = "elementwise"
    channel = "channel"
    none = "none"


LAYER_AFFINE = tuple(mode.value for mode in LayerAffine)


@register("layer", title="LayerNorm")
def build_layer(
    num_channels: int,
    spatial_size=None,
    *,
    eps: float = 1e-5,
    affine: LayerAffine = LayerAffine.elementwise,
    bias: bool = True,
) -> nn.Module:
    """LayerNorm over (C, H, W) of each sample.

    affine="elementwise" (or True): gamma and beta of shape (C, H, W), as torch.nn.LayerNorm;
    needs ``spatial_size=(H, W)``. affine="channel": the Group Normalization paper's LN, per-channel
    gamma and beta, built as GroupNorm(1, C), the same function. affine="none" (or False): none.
    """
    mode = {True: "elementwise", False: "none"}.get(affine, getattr(affine, "value", affine))
    if mode not in LAYER_AFFINE:
        raise ValueError(f"layer norm: affine={affine!r} is not one of {', '.join(LAYER_AFFINE)}")
    if mode == "channel":
        return GroupNorm(1, num_channels, eps, True, bias=bias)
    if spatial_size is None:
        if mode == "none":
            return GroupNorm(1, num_channels, eps, affine=False)
        raise ValueError(
            "layer norm with elementwise affine needs the feature map's spatial size "
            "(spatial_size=(H, W)); pass it, or use affine='channel' for per-channel gamma, beta"
        )
    h, w = (spatial_size, spatial_size) if isinstance(spatial_size, int) else spatial_size
    return LayerNorm((num_channels, h, w), eps, elementwise_affine=mode == "elementwise", bias=bias)
