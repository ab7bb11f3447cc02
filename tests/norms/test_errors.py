"""Bad input raises what torch.nn raises: the same exception type and message."""

import pytest
import torch
from torch import nn

from normlab import norms

CASES = {
    "bn one value per channel": (lambda m: m.BatchNorm1d(3), torch.randn(1, 3)),
    "bn2d one value per channel": (lambda m: m.BatchNorm2d(3), torch.randn(1, 3, 1, 1)),
    "bn2d wants 4D": (lambda m: m.BatchNorm2d(3), torch.randn(3, 4, 4)),
    "bn1d wants 2D or 3D": (lambda m: m.BatchNorm1d(3), torch.randn(3)),
    "bn wrong channels": (lambda m: m.BatchNorm2d(3), torch.randn(2, 4, 4, 4)),
    "gn one value per group": (lambda m: m.GroupNorm(2, 2), torch.randn(1, 2, 1, 1)),
    "gn wants 2D": (lambda m: m.GroupNorm(2, 4), torch.randn(4)),
    "gn wrong channels": (lambda m: m.GroupNorm(2, 4), torch.randn(2, 6, 4, 4)),
    "in one spatial element": (lambda m: m.InstanceNorm2d(3), torch.randn(2, 3, 1, 1)),
    "in wants 3D or 4D": (lambda m: m.InstanceNorm2d(3), torch.randn(2, 3)),
    "in affine wrong channels": (
        lambda m: m.InstanceNorm2d(3, affine=True),
        torch.randn(2, 4, 4, 4),
    ),
    "ln wrong shape": (lambda m: m.LayerNorm([6, 3, 3]), torch.randn(4, 6, 3, 2)),
}


def raised(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_errors_match_torch(case):
    make, x = CASES[case]
    assert raised(lambda: make(norms)(x)) == raised(lambda: make(nn)(x))


def test_groupnorm_indivisible_channels_matches_torch():
    ours = raised(lambda: norms.GroupNorm(3, 4))
    assert ours == raised(lambda: nn.GroupNorm(3, 4))
    assert ours[0] is ValueError


def test_instancenorm_without_affine_warns_on_channel_mismatch_like_torch():
    x = torch.randn(2, 4, 3, 3)
    with pytest.warns(UserWarning, match="does not match num_features"):
        norms.InstanceNorm2d(3)(x)
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm2d(3)(x)


def test_batchnorm_at_n1_with_spatial_positions_trains():
    """BatchNorm2d at N=1 normalizes over H*W > 1 values and does not raise, as in torch."""
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(norms.BatchNorm2d(3)(x), nn.BatchNorm2d(3)(x))
