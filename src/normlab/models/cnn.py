"""A small plain CNN for CPU work: three conv-norm-ReLU stages, max-pooled, and a linear head."""

import torch
from torch import Tensor, nn

from normlab.models.init import activation_after, he_init


class SimpleCNN(nn.Module):
    """[conv3x3-norm-ReLU] x 2 per stage at widths w, 2w, 4w, 2x2 max-pool between stages."""

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
        layers, c_in, size = [], in_channels, image_size
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            for _ in range(2):
                norm = norm_layer(c_out, (size, size))
                conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
                layers += [conv, norm, activation_after(norm)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
