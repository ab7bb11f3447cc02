"""CNNs for CIFAR-sized images. Every model takes a norm factory and never names a norm class.

    model = build_model("resnet20", norm_layer, in_channels=3, num_classes=10, image_size=32)

``norm_layer(num_channels, spatial_size)`` is normlab.norms.norm_factory(...); models pass the
feature map's (H, W) so that norms whose parameters cover space (LayerNorm) can be built.
"""

from collections.abc import Callable

from torch import nn

from normlab.models.cnn import SimpleCNN
from normlab.models.resnet import ResNet, resnet18, resnet20
from normlab.models.weight_standardization import standardize_convs

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet20": resnet20,
    "resnet18": resnet18,
    "cnn": SimpleCNN,
}


def build_model(
    name: str,
    norm_layer: Callable[..., nn.Module],
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    weight_standardization: bool = False,
    **options,
) -> nn.Module:
    """Model `name` with `norm_layer` at every norm site; with `weight_standardization`, every
    convolution standardizes its weight per output filter (GN+WS with norm=group)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    model = MODELS[name](
        norm_layer,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        **options,
    )
    return standardize_convs(model) if weight_standardization else model


__all__ = ["MODELS", "ResNet", "SimpleCNN", "build_model"]
