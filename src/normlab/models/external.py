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
stride 1, and the `maxpool` after it the identity; refused for a model whose stem is not a
convolution then a max-pool (a ViT's or Swin's patch embedding).

Refused before any data is read, in one line: a model that does not run on the dataset's image
size (ViTs want 224x224), and one whose training forward does not return logits. Auxiliary heads
(googlenet, inception_v3) are built off. The model keeps its Conversion (what was swapped, what
was left) as `norm_conversion`, for the run to say and record.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from normlab.errors import ConfigError, require
from normlab.norms.convert import channels_of, replace_norms


def first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """(its parent, its attribute name, the first Conv2d) in `model`'s module order."""
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_path, _, child = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            return parent, child, module
    raise ValueError(f"{type(model).__name__} has no Conv2d to take the input")


def adapt_stem(model: nn.Module, arch: str, in_channels: int, cifar_stem: bool) -> None:
    """The first convolution takes `in_channels`; with `cifar_stem`, it is 3x3 stride 1 and the
    max-pool that follows it (`model.maxpool`) is the identity."""
    parent, child, conv = first_conv(model)
    if cifar_stem:
        stem = f"{conv.kernel_size[0]}x{conv.kernel_size[1]}/{conv.stride[0]}"
        require(isinstance(getattr(model, "maxpool", None), nn.MaxPool2d), "model.cifar_stem",
                "true", "false, or a model whose stem is a convolution then a max-pool "
                "(model.maxpool, as ResNets')",
                f"with model.arch={arch}, whose stem is {stem} with no max-pool")  # fmt: skip
        kernel, stride, padding = 3, 1, 1
        model.maxpool = nn.Identity()
    elif conv.in_channels == in_channels:
        return
    else:
        kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    new = nn.Conv2d(in_channels, conv.out_channels, kernel, stride, padding,
                    bias=conv.bias is not None)  # fmt: skip
    setattr(parent, child, new)


def require_runs_on(model: nn.Module, arch: str, example: torch.Tensor, classes: int) -> None:
    """`model`'s training forward on `example` (on a copy: running statistics stay) returns
    (N, classes) logits; else ConfigError naming the size the model wants, where it says."""
    size = "x".join(map(str, example.shape[-2:]))
    try:
        with torch.no_grad():
            out = copy.deepcopy(model).train()(example)
    except (RuntimeError, ValueError, AssertionError) as error:
        wanted = expected_size(model)
        made_for = f", made for {wanted} images," if wanted else ""
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"model.arch={arch}{made_for} does not run on the data's {size} images "
                          f"({first}); allowed: a model that takes them (resnet18, with "
                          "model.cifar_stem=true for 32x32)") from None  # fmt: skip
    if not (isinstance(out, torch.Tensor) and out.shape == (len(example), classes)):
        raise ConfigError(f"model.arch={arch} returns {type(out).__name__} in training, not "
                          f"(N, {classes}) logits; allowed: a model whose forward returns "
                          "logits")  # fmt: skip


def expected_size(model: nn.Module) -> str | None:
    """The input size a model says it wants (torchvision's ViT `image_size`, timm's
    pretrained_cfg `input_size`), as 'HxW', or None."""
    if isinstance(getattr(model, "image_size", None), int):
        return f"{model.image_size}x{model.image_size}"
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
    return f"{size[-2]}x{size[-1]}" if size else None


def with_norms(model: nn.Module, norm_layer, in_channels: int, image_size: int) -> nn.Module:
    """`model` with `norm_layer` at every channel norm; its Conversion as `norm_conversion`."""
    example = torch.zeros(2, in_channels, image_size, image_size)
    conversion = replace_norms(model, lambda old, size: norm_layer(channels_of(old), size), example)
    model.norm_conversion = conversion
    return model


def torchvision_model(norm_layer, *, in_channels: int = 3, num_classes: int = 10,
                      image_size: int = 32, arch: str = "resnet18",
                      cifar_stem: bool = False) -> nn.Module:  # fmt: skip
    from torchvision import models

    names = models.list_models(module=models)
    shown = ", ".join(names[:8])
    require(arch in names, "model.arch", arch,
            f"a torchvision classification model ({len(names)}: {shown}, …)")  # fmt: skip
    options = {"aux_logits": False} if arch in AUXILIARY_HEADS else {}
    model = models.get_model(arch, weights=None, num_classes=num_classes, **options)
    return adapted(model, arch, norm_layer, in_channels, num_classes, image_size, cifar_stem)


AUXILIARY_HEADS = {"googlenet", "inception_v3"}  # torchvision's: built without (aux_logits)


def adapted(model: nn.Module, arch: str, norm_layer, in_channels: int, num_classes: int,
            image_size: int, cifar_stem: bool) -> nn.Module:  # fmt: skip
    """The stem adapted, the model checked on an image of the dataset's size, the norms
    swapped."""
    adapt_stem(model, arch, in_channels, cifar_stem)
    example = torch.zeros(2, in_channels, image_size, image_size)
    require_runs_on(model, arch, example, num_classes)
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
    return adapted(model, arch, norm_layer, in_channels, num_classes, image_size, cifar_stem)


@dataclass
class ExternalSettings:
    """What a torchvision or timm model adds to ModelSettings: its name and the CIFAR stem."""

    arch: str = "resnet18"
    cifar_stem: bool = False  # 3x3 stride-1 first convolution and no max-pool (32x32 inputs)
