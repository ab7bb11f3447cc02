"""The hand-written backward (normlab.norms.standardize) is the plain formula's gradient."""

import pytest
import torch

from normlab.norms.standardize import standardize

# (input shape, statistic axes, parameter shape, statistics layout): BN, BN1d, IN, GN, LN
LAYOUTS = [
    ((4, 3, 5, 5), (0, 2, 3), [1, 3, 1, 1], None),
    ((6, 3), (0,), [1, 3], None),
    ((4, 3, 5, 5), (2, 3), [1, 3, 1, 1], None),
    ((4, 6, 5, 5), (2, 3), [1, 3, 2, 1], [4, 3, 2, 25]),
    ((4, 3, 5, 5), (1, 2, 3), [1, 3, 5, 5], None),
]


def plain(x, dims, eps, weight, bias, param_shape, stats_shape):
    """The formula through autograd: var_mean, subtract, rsqrt, multiply, add."""
    xs = x.reshape(stats_shape or x.shape)
    var, mean = torch.var_mean(xs, dim=dims, correction=0, keepdim=True)
    y = (xs - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.view(param_shape)
    if bias is not None:
        y = y + bias.view(param_shape)
    return y.reshape(x.shape)


@pytest.mark.parametrize("shape, dims, param_shape, stats_shape", LAYOUTS)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_and_backward_equal_autograd_through_the_formula(
    shape, dims, param_shape, stats_shape, affine, dtype
):
    torch.manual_seed(0)
    x = (torch.randn(shape, dtype=dtype) * 3 + 2).requires_grad_()
    n = torch.Size([s for s in param_shape if s > 0]).numel()
    weight = torch.randn(n, dtype=dtype, requires_grad=True) if affine != "none" else None
    bias = torch.randn(n, dtype=dtype, requires_grad=True) if affine == "both" else None
    dy = torch.randn(shape, dtype=dtype)
    inputs = [t for t in (x, weight, bias) if t is not None]

    y, mean, var = standardize(x, dims, 1e-5, weight, bias, param_shape, stats_shape)
    grads = torch.autograd.grad(y, inputs, dy)
    y_ref = plain(x, dims, 1e-5, weight, bias, param_shape, stats_shape)
    grads_ref = torch.autograd.grad(y_ref, inputs, dy)

    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y, y_ref, **tol)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, **tol)
    assert not mean.requires_grad and not var.requires_grad


def test_output_is_not_a_view_so_an_in_place_relu_may_follow():
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    y, _, _ = standardize(x, (2, 3), 1e-5, stats_shape=[2, 2, 2, 9])
    torch.relu_(y).sum().backward()  # would raise if y were a view made inside the Function
    assert x.grad is not None and x.grad.shape == x.shape


def test_backward_with_a_large_mean_is_within_1e_3_of_float64():
    """x = N(1e4, 1) in float32: the input gradient against the float64 formula."""
    torch.manual_seed(0)
    x = torch.randn(8, 4, 6, 6) + 1e4
    dy = torch.randn_like(x)
    for dims, stats_shape in [((0, 2, 3), None), ((2, 3), [8, 2, 2, 36]), ((1, 2, 3), None)]:
        x32, x64 = x.clone().requires_grad_(), x.double().requires_grad_()
        (g32,) = torch.autograd.grad(
            standardize(x32, dims, 1e-5, stats_shape=stats_shape)[0], x32, dy
        )
        (g64,) = torch.autograd.grad(
            plain(x64, dims, 1e-5, None, None, None, stats_shape), x64, dy.double()
        )
        err = ((g32.double() - g64).abs().max() / g64.abs().max()).item()
        assert err <= 1e-3, (dims, err)
