"""CIFAR ResNets: ResNet-20 (He et al. 2016, section 4.2) and the 3x3-stem ResNet-18.

Every normalization, the shortcut projections' included, comes from `norm_layer`, so a norm
choice reaches every layer. Projection shortcuts are 1x1 convolution + norm (option B).
"""

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor, nn

from normlab.models.init import (
    activation_after,
    conv_norm_act,
    conv_out,
    he_init,
    make_norm,
    zero_init_last_gamma,
)

NormLayer = Callable[..., nn.Module]


class BasicBlock(nn.Module):
    """conv3x3-norm-ReLU-conv3x3-norm, plus the (projected) input, then ReLU (the first ReLU is
    left out after a norm with its own activation: FRN)."""

    def __init__(self, norm_layer: NormLayer, c_in: int, c_out: int, stride: int, size: int):
        super().__init__()
        out_size = conv_out(size, stride)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = make_norm(norm_layer, c_out, (out_size, out_size))
        self.act1 = activation_after(self.norm1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = make_norm(norm_layer, c_out, (out_size, out_size))
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            conv = nn.Conv2d(c_in, c_out, 1, stride, bias=False)
            norm = make_norm(norm_layer, c_out, (out_size, out_size))
            self.shortcut = conv_norm_act(conv, norm, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A 3x3 stem, then stages of BasicBlocks, global average pooling and a linear classifier.
    Layers are named by place: stem.norm, stage2.block1.norm1, stage2.block1.shortcut.norm."""

    def __init__(
        self,
        norm_layer: NormLayer,
        widths: tuple[int, ...],
        blocks_per_stage: int,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        size = image_size
        stem_conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.stem = conv_norm_act(stem_conv, make_norm(norm_layer, widths[0], (size, size)))
        self.stage_names, c_in = [], widths[0]
        for i, width in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append((f"block{j + 1}", BasicBlock(norm_layer, c_in, width, stride, size)))
                size, c_in = conv_out(size, stride), width
            self.stage_names.append(f"stage{i + 1}")
            self.add_module(self.stage_names[-1], nn.Sequential(OrderedDict(blocks)))
        self.head = nn.Linear(c_in, num_classes)
        he_init(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    zero_init_last_gamma(module.norm2)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def resnet20(norm_layer: NormLayer, **kwargs) -> ResNet:
    """He et al. 2016 CIFAR ResNet-20: widths 16/32/64, 3 blocks per stage, ~0.27M parameters."""
    return ResNet(norm_layer, (16, 32, 64), 3, **kwargs)


def resnet18(norm_layer: NormLayer, **kwargs) -> ResNet:
    """ResNet-18 with a 3x3 stem and no max-pool, for 32x32 inputs: ~11.2M parameters."""
    return ResNet(norm_layer, (64, 128, 256, 512), 2, **kwargs)
