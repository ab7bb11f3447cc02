"""A small plain CNN for CPU work: three conv-norm-ReLU stages, max-pooled, and a linear head."""

from collections import OrderedDict

import torch
from torch import Tensor, nn

from normlab.models.init import conv_norm_act, he_init, make_norm


class SimpleCNN(nn.Module):
    """[conv3x3-norm-ReLU] x 2 per stage at widths w, 2w, 4w, 2x2 max-pool between stages.
    Layers are named by place: stage1.conv1.{conv,norm,act}, ..., stage3.conv2, stage2.pool."""

    def __init__(
        self,
        norm_layer,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        width: int = 16,
    ):
        super().__init__()
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"model.width={width!r}; allowed: an integer >= 1")
        c_in, size = in_channels, image_size
        self.stage_names = []
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            units = []
            if i > 0:
                units.append(("pool", nn.MaxPool2d(2)))
                size //= 2
            for j in range(2):
                norm = make_norm(norm_layer, c_out, (size, size))
                conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
                units.append((f"conv{j + 1}", conv_norm_act(conv, norm)))
                c_in = c_out
            self.stage_names.append(f"stage{i + 1}")
            self.add_module(self.stage_names[-1], nn.Sequential(OrderedDict(units)))
        self.head = nn.Linear(c_in, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
