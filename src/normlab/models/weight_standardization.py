"""Weight Standardization (Qiao et al. 2019): every convolution uses its weight standardized
per output filter, the companion of GroupNorm in GN+WS."""

import torch
from torch import Tensor, nn

WS_EPS = 1e-5


def standardized(weight: Tensor, eps: float = WS_EPS) -> Tensor:
    r"""Ŵ = (W − mean) / (std + eps), mean and std over each output filter's
    in_channels × kH × kW values; std is the unbiased estimate, as the paper's reference code."""
    flat = weight.flatten(1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, keepdim=True)
    return ((flat - mean) / (std + eps)).view_as(weight)


class WSConv2d(nn.Conv2d):
    """nn.Conv2d whose forward convolves with standardized(weight); the parameter itself (and
    so the state_dict) holds the raw W."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, standardized(self.weight), self.bias)


def standardize_convs(model: nn.Module) -> nn.Module:
    """Replaces every nn.Conv2d in `model` by a WSConv2d with the same options and weights."""
    for name, child in list(model.named_children()):
        if type(child) is nn.Conv2d:
            ws = WSConv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                child.bias is not None,
                child.padding_mode,
                device=child.weight.device,
                dtype=child.weight.dtype,
            )
            with torch.no_grad():
                ws.load_state_dict(child.state_dict())
            setattr(model, name, ws)
        else:
            standardize_convs(child)
    return model
