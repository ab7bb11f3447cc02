"""Precision: float32 statistics for half input, autocast, large means, constant channels."""

import copy

import pytest
import torch

from normlab import norms
from tests.norms.twins import twins

C, H, W = 4, 6, 6


def pairs(dtype=torch.float32):
    """(name, normlab layer, torch twin) for every class, built for (N, C, H, W) input."""
    torch.manual_seed(0)
    return [
        ("batch", *twins(norms.BatchNorm2d, torch.nn.BatchNorm2d, C, dtype=dtype)),
        ("group", *twins(norms.GroupNorm, torch.nn.GroupNorm, 2, C, dtype=dtype)),
        (
            "instance",
            *twins(norms.InstanceNorm2d, torch.nn.InstanceNorm2d, C, affine=True, dtype=dtype),
        ),
        ("layer", *twins(norms.LayerNorm, torch.nn.LayerNorm, (C, H, W), dtype=dtype)),
    ]


def float64_reference(ref: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The torch layer's function evaluated in float64 on the same input values (on a copy)."""
    return copy.deepcopy(ref).double()(x.double())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_input_uses_float32_statistics(dtype):
    x = (torch.randn(8, C, H, W) * 2 + 3).to(dtype)
    for name, ours, ref in pairs():
        y, y_ref = ours(x), ref(x)
        assert y.dtype == y_ref.dtype == dtype, name
        exact = float64_reference(ref, x)
        # Only the final rounding to `dtype` may separate us from the float64 function.
        bound = torch.finfo(dtype).eps * exact.abs().max()
        assert (y.double() - exact).abs().max() <= bound, name
        if getattr(ref, "running_mean", None) is not None:
            torch.testing.assert_close(ours.running_mean, ref.running_mean)
            torch.testing.assert_close(ours.running_var, ref.running_var)


def test_bfloat16_layers_match_torch():
    x = torch.randn(8, C, H, W, dtype=torch.bfloat16)
    for name, ours, ref in pairs(torch.bfloat16):
        y, y_ref = ours(x), ref(x)
        assert y.dtype == y_ref.dtype == torch.bfloat16, name
        torch.testing.assert_close(y, y_ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_cpu_autocast_output_dtype_and_values_match_torch(input_dtype):
    x = torch.randn(8, C, H, W).to(input_dtype)
    for name, ours, ref in pairs():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, y_ref = ours(x), ref(x)
        assert y.dtype == y_ref.dtype, name
        tol = 1e-5 if input_dtype == torch.float32 else 2e-2
        torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_output_dtype_matches_torch():
    x = torch.randn(8, C, H, W, device="cuda")
    for name, ours, ref in pairs():
        ours, ref = ours.cuda(), ref.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y, y_ref = ours(x.bfloat16()), ref(x.bfloat16())
        assert y.dtype == y_ref.dtype, name
        torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)


def one_pass(x: torch.Tensor, dims) -> torch.Tensor:
    """The cancelling E[x^2] - E[x]^2 formula, to show the large-mean check has teeth."""
    mean = x.mean(dims, keepdim=True)
    var = (x * x).mean(dims, keepdim=True) - mean * mean
    return (x - mean) / torch.sqrt(var + 1e-5)


def test_large_mean_has_no_cancellation():
    """Mean 1e4, std 1, in float32: within 1e-3 of the output's scale from the float64 function."""
    torch.manual_seed(0)
    x = torch.randn(8, C, H, W) + 1e4
    for name, ours, ref in pairs():
        with torch.no_grad():
            ours.weight.fill_(1), ours.bias.zero_(), ref.weight.fill_(1), ref.bias.zero_()
        exact = float64_reference(ref, x)
        err = ((ours(x).double() - exact).abs().max() / exact.std()).item()
        assert err <= 1e-3, f"{name}: {err:.2e}"
    bad = one_pass(x, (0, 2, 3)).double()
    exact = float64_reference(torch.nn.BatchNorm2d(C), x)
    assert not ((bad - exact).abs().max() / exact.std() <= 1e-3)


def test_constant_channel_gives_beta():
    x = torch.randn(8, C, H, W)
    x[:, 0] = 7.0  # every statistic that covers channel 0 alone is over a constant
    for name, ours, _ in pairs():
        if name == "group":
            x_in = x.clone()
            x_in[:, :2] = 7.0  # group 0 is channels 0 and 1
        elif name == "layer":
            x_in = torch.full_like(x, 7.0)
        else:
            x_in = x
        y = ours(x_in)
        assert torch.isfinite(y).all(), name
        beta = ours.bias[0]  # (H, W) for layer's elementwise affine, a scalar otherwise
        torch.testing.assert_close(y[:, 0], beta.expand_as(y[:, 0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_float64(training):
    torch.manual_seed(0)
    layers = [
        norms.BatchNorm2d(3, dtype=torch.float64),
        norms.BatchNorm2d(3, track_running_stats=False, dtype=torch.float64),
        norms.GroupNorm(3, 6, dtype=torch.float64),
        norms.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=torch.float64),
        norms.LayerNorm((3, 4, 4), dtype=torch.float64),
        # every affine combination of the hand-written backward
        norms.BatchNorm2d(3, affine=False, dtype=torch.float64),
        norms.BatchNorm2d(3, bias=False, dtype=torch.float64),
        norms.GroupNorm(1, 3, dtype=torch.float64),
        norms.GroupNorm(3, 3, affine=False, dtype=torch.float64),
        norms.InstanceNorm2d(3, dtype=torch.float64),
        norms.InstanceNorm2d(3, affine=True, bias=False, dtype=torch.float64),
        norms.LayerNorm((3, 4, 4), elementwise_affine=False, dtype=torch.float64),
        norms.LayerNorm((4, 4), bias=False, dtype=torch.float64),
    ]
    for layer in layers:
        layer.train(training)
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn_like(p))
        channels = layer.num_channels if isinstance(layer, norms.GroupNorm) else 3
        x = torch.randn(3, channels, 4, 4, dtype=torch.float64, requires_grad=True)
        params = tuple(layer.parameters())

        def fn(x, *params, layer=layer):
            return torch.func.functional_call(layer, dict(layer.named_parameters()), (x,))

        assert torch.autograd.gradcheck(fn, (x, *params)), type(layer).__name__
