"""The factory models use: names, group count or size, layer's spatial size, clear errors."""

import pytest
import torch
from torch import nn

from normlab import norms
from normlab.norms.registry import NORMS


def test_every_name_builds_a_working_layer():
    x = torch.randn(4, 64, 8, 8)
    for name in ("batch", "group", "instance", "layer", "none"):
        layer = norms.build(name, 64, spatial_size=(8, 8))
        assert layer(x).shape == x.shape, name
    assert set(NORMS) >= {"batch", "group", "instance", "layer", "none"}


def test_builds_the_expected_layers():
    assert isinstance(norms.build("batch", 16), norms.BatchNorm2d)
    assert isinstance(norms.build("instance", 16), norms.InstanceNorm2d)
    assert isinstance(norms.build("none", 16), nn.Identity)
    bn = norms.build("batch", 16, momentum=None, eps=1e-3, affine=False)
    assert (bn.momentum, bn.eps, bn.weight) == (None, 1e-3, None)
    inst = norms.build("instance", 16, affine=True, track_running_stats=True)
    assert inst.weight.shape == (16,) and inst.running_mean.shape == (16,)


def test_group_count_and_group_size():
    assert norms.build("group", 64).num_groups == 32  # the paper's default
    assert norms.build("group", 64, num_groups=8).num_groups == 8
    assert norms.build("group", 64, group_size=16).num_groups == 4
    assert norms.build("group", 64, group_size=1).num_groups == 64  # = InstanceNorm + affine


def test_impossible_groups_name_channels_request_and_choices():
    with pytest.raises(ValueError) as info:
        norms.build("group", 24, num_groups=5)
    msg = str(info.value)
    assert "24 channels" in msg and "num_groups=5" in msg and "[1, 2, 3, 4, 6, 8, 12, 24]" in msg
    with pytest.raises(ValueError, match=r"group_size=5 .*valid group_size: \[1, 2, 4, 8, 16\]"):
        norms.build("group", 16, group_size=5)
    with pytest.raises(ValueError, match="16 channels: num_groups=32"):
        norms.build("group", 16)  # the paper's 32 groups do not fit 16 channels
    with pytest.raises(ValueError, match="not both"):
        norms.build("group", 16, num_groups=4, group_size=4)


def test_layer_normalizes_each_sample_over_chw_with_elementwise_affine():
    x = torch.randn(4, 6, 3, 3)
    layer = norms.build("layer", 6, spatial_size=(3, 3))
    assert isinstance(layer, norms.LayerNorm) and layer.weight.shape == (6, 3, 3)
    torch.testing.assert_close(layer(x), nn.LayerNorm([6, 3, 3])(x))
    assert norms.build("layer", 6, spatial_size=3).normalized_shape == (6, 3, 3)


def test_layer_channel_affine_is_the_gn_papers_ln():
    x = torch.randn(4, 6, 3, 3)
    layer = norms.build("layer", 6, affine="channel")
    assert layer.weight.shape == (6,)
    torch.testing.assert_close(layer(x), nn.LayerNorm([6, 3, 3], elementwise_affine=False)(x))
    no_affine = norms.build("layer", 6, affine=False)
    assert not list(no_affine.parameters())
    torch.testing.assert_close(no_affine(x), layer(x))


def test_layer_elementwise_without_spatial_size_says_what_to_pass():
    with pytest.raises(ValueError, match=r"spatial_size=\(H, W\)"):
        norms.build("layer", 6)
    with pytest.raises(ValueError, match="elementwise, channel, none"):
        norms.build("layer", 6, spatial_size=(3, 3), affine="pixel")


def test_unknown_name_or_option_lists_the_valid_ones():
    valid = "batch, batch_renorm, frn, ghost_batch, group"
    with pytest.raises(ValueError, match=f"unknown norm .batchnorm.; valid norms: {valid}"):
        norms.build("batchnorm", 8)
    with pytest.raises(ValueError, match="has no option.* num_groups; valid options: eps"):
        norms.build("batch", 8, num_groups=2)


def test_a_new_norm_is_one_registration():
    @norms.register("test_scale")
    def build_scale(num_channels, spatial_size=None, *, factor: float = 2.0):
        return nn.Identity() if factor == 1 else ScaleNorm(factor)

    class ScaleNorm(nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    try:
        assert norms.options_of("test_scale") == ["factor"]
        factory = norms.norm_factory("test_scale", factor=3.0)
        assert factory(8)(torch.ones(1)).item() == 3.0
        with pytest.raises(ValueError, match="already registered"):
            norms.register("test_scale")(build_scale)
    finally:
        NORMS.pop("test_scale")


def test_norm_factory_is_the_model_contract():
    factory = norms.norm_factory("group", num_groups=4)
    layer = factory(16, (8, 8))
    assert isinstance(layer, norms.GroupNorm) and layer.num_groups == 4
    with pytest.raises(ValueError, match="unknown norm"):
        norms.norm_factory("gropu")
