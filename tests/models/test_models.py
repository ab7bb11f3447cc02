"""Every norm reaches every normalization site of every model, and one training step runs."""

import pytest
import torch
from torch import nn

from normlab.models import build_model
from normlab.norms import NORMS, norm_factory

NORM_CLASSES = ("BatchNorm2d", "BatchRenorm2d", "GhostBatchNorm2d", "FilterResponseNorm2d",
                "GroupNorm", "InstanceNorm2d", "LayerNorm")  # fmt: skip
SITES = {"resnet20": 1 + 9 * 2 + 2, "resnet18": 1 + 8 * 2 + 3, "cnn": 6}  # stem, blocks, shortcuts
PARAMS = {"resnet20": (0.26e6, 0.28e6), "resnet18": (11.1e6, 11.3e6)}
OPTIONS = {"group": {"num_groups": 8}}


def counting(name):
    """norm_factory(name) that records the channel count of every layer it builds."""
    calls, factory = [], norm_factory(name, **OPTIONS.get(name, {}))

    def build(num_channels, spatial_size=None):
        calls.append(num_channels)
        return factory(num_channels, spatial_size)

    return build, calls


@pytest.mark.parametrize("model_name", sorted(SITES))  # normlab's own; external: test_external
@pytest.mark.parametrize("norm", sorted(NORMS))
def test_every_norm_every_model_trains_one_step(model_name, norm):
    torch.manual_seed(0)
    factory, calls = counting(norm)
    model = build_model(model_name, factory, num_classes=10)
    assert len(calls) == SITES[model_name]
    found = [m for m in model.modules() if type(m).__name__ in NORM_CLASSES]
    assert len(found) == (0 if norm == "none" else SITES[model_name])
    assert all(type(m).__module__.startswith("normlab.norms") for m in found)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    before = [p.detach().clone() for p in model.parameters()]
    logits = model(x)
    assert logits.shape == (4, 10)
    nn.functional.cross_entropy(logits, y).backward()
    optimizer.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("model_name", sorted(PARAMS))
def test_parameter_counts(model_name):
    low, high = PARAMS[model_name]
    n = sum(p.numel() for p in build_model(model_name, norm_factory("batch")).parameters())
    assert low <= n <= high, n


def test_shortcut_projections_are_normalized():
    model = build_model("resnet20", norm_factory("group", num_groups=4))
    projection = model.stages[1][0].shortcut
    assert isinstance(projection[0], nn.Conv2d) and type(projection[1]).__name__ == "GroupNorm"


@pytest.mark.parametrize("model_name", sorted(SITES))  # normlab's own; external: test_external
def test_fashion_mnist_shape(model_name):
    """1 channel, 28x28: layer norm's (C, H, W) follows the odd sizes 28, 14, 7, 4."""
    model = build_model(
        model_name, norm_factory("layer"), in_channels=1, num_classes=10, image_size=28
    )
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_he_init_and_zero_init_residual():
    model = build_model("resnet20", norm_factory("batch"), zero_init_residual=True)
    conv = model.stem[0]
    fan_out = conv.out_channels * 9
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.2 * (2 / fan_out) ** 0.5
    blocks = [b for stage in model.stages for b in stage]
    assert all(torch.all(b.norm2.weight == 0) for b in blocks)
    assert all(torch.all(b.norm1.weight == 1) for b in blocks)


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet50'; valid models: cnn, resnet18"):
        build_model("resnet50", norm_factory("batch"))


def test_layer_names_say_where_a_layer_is():
    """Norm layers are named by stage and unit (what drift/<layer>/... tags and state_dict keys
    show), not by index."""

    def norm_names(name):
        model = build_model(name, norm_factory("batch"))
        return [n for n, m in model.named_modules() if hasattr(m, "running_mean")]

    assert norm_names("cnn") == [f"stage{s}.conv{c}.norm" for s in (1, 2, 3) for c in (1, 2)]
    resnet = norm_names("resnet20")
    assert resnet[:3] == ["stem.norm", "stage1.block1.norm1", "stage1.block1.norm2"]
    assert "stage2.block1.shortcut.norm" in resnet and len(resnet) == 1 + 3 * 3 * 2 + 2
