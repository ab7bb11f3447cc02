"""CNNs for CIFAR-sized images. Every model takes a norm factory and never names a norm class.

    model = build_model("resnet20", norm_layer, in_channels=3, num_classes=10, image_size=32)

``norm_layer(num_channels, spatial_size)`` is normlab.norms.norm_factory(...); models pass the
feature map's (H, W) so that norms whose parameters cover space (LayerNorm) can be built.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from normlab.errors import require
from normlab.models.cnn import SimpleCNN
from normlab.models.external import ExternalSettings, timm_model, torchvision_model
from normlab.models.resnet import ResNet, resnet18, resnet20
from normlab.models.weight_standardization import standardize_convs

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet20": resnet20,
    "resnet18": resnet18,
    "cnn": SimpleCNN,
    "torchvision": torchvision_model,
    "timm": timm_model,
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


@dataclass
class ModelSettings:
    """What every model's settings have (Hydra group `model`)."""

    name: str = "resnet20"
    num_groups_default: int = 8  # what norm=group uses unless norm.num_groups is given
    weight_standardization: bool = False  # every conv standardizes its weight (GN+WS)

    def __post_init__(self):
        require(self.name in MODELS, "model.name", self.name, ", ".join(sorted(MODELS)))
        require(self.num_groups_default >= 1, "model.num_groups_default",
                self.num_groups_default, "an integer >= 1")  # fmt: skip

    def builder_options(self) -> dict:
        """build_model's keyword options (all but name and num_groups_default)."""
        options = dataclasses.asdict(self)
        del options["name"], options["num_groups_default"]
        return options


@dataclass
class ResNetSettings(ModelSettings):
    """resnet20, resnet18."""

    zero_init_residual: bool = False  # each block's last norm starts with gamma = 0


@dataclass
class ExternalModelSettings(ExternalSettings, ModelSettings):
    """model=torchvision or model=timm: any of their classification models by `arch`."""

    name: str = "torchvision"


@dataclass
class CnnSettings(ModelSettings):
    """The small CNN."""

    name: str = "cnn"
    width: int = 16  # channels of the first stage (then 2x, 4x); checked by SimpleCNN


__all__ = [
    "MODELS",
    "CnnSettings",
    "ExternalModelSettings",
    "ModelSettings",
    "ResNet",
    "ResNetSettings",
    "SimpleCNN",
    "build_model",
]
