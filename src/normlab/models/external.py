"""Networks from torchvision and timm, by name, with normlab's norm at every norm site.

`model=torchvision model.arch=resnet50` builds ``torchvision.models.get_model(arch,
weights=None)`` (offline: no pretrained weights), `model=timm model.arch=<name>` builds
``timm.create_model(name, pretrained=False)`` (timm is optional: pip install -e ".[timm]").
The head gets the dataset's classes and the first convolution its channels; then every
channel norm is swapped for the configured one by normlab.norms.convert's walk, each built by
the run's norm factory (so a group count that does not divide a layer is refused naming the
layer, `layer3.1.bn2`, as in normlab's own models), with each layer's (H, W) from one forward
pass of an image of the dataset's size.

`cifar_stem=true`, for 32x32 images (as CIFAR ResNets): the first convolution becomes 3x3,
stride 1, and a `maxpool` after it the identity.
"""

from dataclasses import dataclass

import torch
from torch import nn

from normlab.errors import require
from normlab.norms.convert import channels_of, replace_norms


def first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """(its parent, its attribute name, the first Conv2d) in `model`'s module order."""
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_path, _, child = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            return parent, child, module
    raise ValueError(f"{type(model).__name__} has no Conv2d to take the input")


def adapt_stem(model: nn.Module, in_channels: int, cifar_stem: bool) -> None:
    """The first convolution takes `in_channels`; with `cifar_stem`, it is 3x3 stride 1 and a
    max-pool that follows it (`model.maxpool`) is the identity."""
    parent, child, conv = first_conv(model)
    if cifar_stem:
        kernel, stride, padding = 3, 1, 1
        if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
            model.maxpool = nn.Identity()
    elif conv.in_channels == in_channels:
        return
    else:
        kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    new = nn.Conv2d(in_channels, conv.out_channels, kernel, stride, padding,
                    bias=conv.bias is not None)  # fmt: skip
    setattr(parent, child, new)


def with_norms(model: nn.Module, norm_layer, in_channels: int, image_size: int) -> nn.Module:
    example = torch.zeros(2, in_channels, image_size, image_size)
    replace_norms(model, lambda old, size: norm_layer(channels_of(old), size), example)
    return model


def torchvision_model(norm_layer, *, in_channels: int = 3, num_classes: int = 10,
                      image_size: int = 32, arch: str = "resnet18",
                      cifar_stem: bool = False) -> nn.Module:  # fmt: skip
    from torchvision import models

    names = models.list_models(module=models)
    shown = ", ".join(names[:8])
    require(arch in names, "model.arch", arch,
            f"a torchvision classification model ({len(names)}: {shown}, …)")  # fmt: skip
    model = models.get_model(arch, weights=None, num_classes=num_classes)
    adapt_stem(model, in_channels, cifar_stem)
    return with_norms(model, norm_layer, in_channels, image_size)


def timm_model(norm_layer, *, in_channels: int = 3, num_classes: int = 10,
               image_size: int = 32, arch: str = "resnet18",
               cifar_stem: bool = False) -> nn.Module:  # fmt: skip
    try:
        import timm
    except ImportError:
        raise ValueError(
            "model=timm; allowed: with timm installed (pip install -e '.[timm]')"
        ) from None
    names = timm.list_models()
    require(
        arch in names, "model.arch", arch, f"a timm model ({len(names)}: see timm.list_models())"
    )
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    adapt_stem(model, in_channels, cifar_stem)
    return with_norms(model, norm_layer, in_channels, image_size)


@dataclass
class ExternalSettings:
    """What a torchvision or timm model adds to ModelSettings: its name and the CIFAR stem."""

    arch: str = "resnet18"
    cifar_stem: bool = False  # 3x3 stride-1 first convolution and no max-pool (32x32 inputs)
