"""Filter Response Normalization with a Thresholded Linear Unit (Singh & Krishnan 2020)."""

import torch
from torch import Tensor, nn

from normlab.norms.base import compute_dtype, output_dtype
from normlab.norms.registry import register


class FilterResponseNorm2d(nn.Module):
    r"""FRN + TLU, per sample and channel, with no mean subtraction and no batch dependence.

    .. math::
        \nu^2 = \mathrm{E}_{H,W}[x^2], \quad
        y = \gamma \frac{x}{\sqrt{\nu^2 + \epsilon}} + \beta, \quad z = \max(y, \tau)

    γ (``weight``, init 1), β (``bias``, init 0) and τ (``tau``, init 0) are per-channel.
    FRN replaces the norm *and* the activation after it: normlab's models leave out the ReLU
    that follows a norm with ``ends_with_activation`` (the ReLU after a residual addition
    stays). Training and eval compute the same function.

    Args:
        num_features: C.
        eps: added to ν². Default 1e-6 (the paper's, for large H·W).
    """

    ends_with_activation = True  # the TLU: models put no ReLU after it

    def __init__(self, num_features: int, eps: float = 1e-6, device=None, dtype=None) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps={eps} must be > 0")
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        self.tau = nn.Parameter(torch.zeros(num_features, **factory))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")
        shape = (1, -1, 1, 1)
        xs = x.to(compute_dtype(x))
        nu2 = xs.square().mean((2, 3), keepdim=True)
        y = xs * torch.rsqrt(nu2 + self.eps) * self.weight.view(shape) + self.bias.view(shape)
        return torch.maximum(y, self.tau.view(shape).to(y.dtype)).to(output_dtype(x))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


@register("frn", title="FRN")
def build_frn(num_channels: int, spatial_size=None, *, eps: float = 1e-6) -> FilterResponseNorm2d:
    return FilterResponseNorm2d(num_channels, eps)


__all__ = ["FilterResponseNorm2d", "build_frn"]
