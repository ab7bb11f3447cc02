"""What the models share: He initialisation and the named conv-norm-activation unit."""

import inspect
from collections import OrderedDict

from torch import nn


def conv_out(size: int, stride: int) -> int:
    """Spatial size after a 3x3 (padding 1) or 1x1 (padding 0) convolution with `stride`."""
    return (size - 1) // stride + 1


def he_init(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions, as He et al. 2015; zero linear biases.

    Norm layers keep their own initialisation (gamma = 1, beta = 0).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="linear")
            nn.init.zeros_(module.bias)


def zero_init_last_gamma(norm: nn.Module) -> None:
    """gamma = 0 on a residual block's last norm, so each block starts as the identity."""
    weight = getattr(norm, "weight", None)
    if weight is not None:
        nn.init.zeros_(weight)


def activation_after(norm: nn.Module) -> nn.Module:
    """The ReLU that follows a norm, or nothing where the norm ends in its own activation
    (FRN's TLU: a ReLU after it would cut the gradient to its threshold τ at init, τ = 0)."""
    return nn.Identity() if getattr(norm, "ends_with_activation", False) else nn.ReLU(inplace=True)


def conv_norm_act(conv: nn.Conv2d, norm: nn.Module, activation: bool = True) -> nn.Sequential:
    """conv, norm (and its activation), with children named so that every layer's name says
    where it is: <stage>.<unit>.conv, .norm, .act (e.g. stage2.conv1.norm)."""
    parts = [("conv", conv), ("norm", norm)]
    if activation:
        parts.append(("act", activation_after(norm)))
    return nn.Sequential(OrderedDict(parts))


def make_norm(norm_layer, num_channels: int, spatial_size: tuple[int, int]) -> nn.Module:
    """`norm_layer(num_channels)`, as torchvision and timm call a norm factory, with the feature
    map's (H, W) as `spatial_size=` for a factory that takes it (normlab's norm_factory: its
    LayerNorm's parameters cover space). torch's own nn.BatchNorm2d or nn.GroupNorm partials
    work as they are."""
    try:
        parameters = inspect.signature(norm_layer).parameters
    except (TypeError, ValueError):  # a builtin or C callable: the ecosystem's contract
        return norm_layer(num_channels)
    if "spatial_size" in parameters:
        return norm_layer(num_channels, spatial_size=spatial_size)
    return norm_layer(num_channels)
