r"""Normalization with batch statistics, and its closed-form backward.

Forward, with the statistics over the axes D (m values each) and gamma, beta broadcast:

.. math::
    \mu = \mathrm{E}_D[x], \quad \sigma^2 = \mathrm{Var}_D[x] \text{ (biased)}, \quad
    r = 1 / \sqrt{\sigma^2 + \epsilon}, \quad \hat{x} = (x - \mu) r, \quad
    y = \hat{x} \gamma + \beta

Backward. With g = dL/dx̂ = dy·γ, and using dμ/dx_j = 1/m and dσ²/dx_j = 2(x_j − μ)/m:

.. math::
    \frac{\partial L}{\partial x_i} = r \Big( g_i - \tfrac{1}{m}\sum_j g_j
        - \hat{x}_i \, \tfrac{1}{m}\sum_j g_j \hat{x}_j \Big)

where the sums run over the statistic's m values. In terms of P = dy·x̂ and dy:
Σ g·x̂ = Σ γ·P and Σ g = Σ γ·dy, dγ = Σ P and dβ = Σ dy, each over its own axes. All four are
sums of P and dy, so P and dy are first summed over the axes shared by the statistic and the
broadcast of γ (BN: all of D; GN, IN: H·W; LN: none), and γ multiplies what is left, which is
small for every norm but LN. Then dx = dy·(rγ) − x̂·(r·Σg·x̂/m) − r·Σg/m.

Costs, on the CPU (torch 2.14, 2 cores; (128, 16, 28, 28) float32): torch.var_mean takes
~5.7 ms there (a Welford reduction) against ~0.25 ms for a mean, so the variance is two-pass,
mean((x − μ)²), with no E[x²] − E[x]² cancellation, after a mean summed in float64. Full-size
tensors cost more to allocate than to fill, so temporaries are updated in place. The forward
saves x̂ (computed anyway; x can then be freed) and r. Autograd through the same formula keeps
five full-size intermediates and runs each op's backward. There is no double backward.
"""

import torch
from torch import Tensor

from normlab.norms.base import compute_dtype


def sum_over(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.sum(dims, keepdim=True) if dims else t


class Standardize(torch.autograd.Function):
    """y = x̂·γ + β, x̂ from the statistics over `dims` of x viewed as `stats_shape`, γ and β
    viewed as `param_shape` in that layout. y is a fresh tensor of x's shape (so that an
    in-place ReLU after it is allowed); temporaries are updated in place."""

    @staticmethod
    def forward(x, weight, bias, stats_shape, dims, eps, param_shape):
        xs = x.to(compute_dtype(x)).reshape(stats_shape)
        # Accumulated in float64: a float32 mean of ~10^3 values near 1e4 is off by ~2e-3.
        mean = xs.mean(dims, keepdim=True, dtype=torch.float64).to(xs.dtype)
        x_hat = xs - mean  # subtract first: exact for large-mean input
        var = (x_hat * x_hat).mean(dims, keepdim=True)
        rstd = torch.rsqrt(var + eps)
        x_hat.mul_(rstd)
        y = torch.empty(x.shape, dtype=x_hat.dtype, device=x.device)
        ys = y.view(stats_shape)
        if weight is None:
            ys.copy_(x_hat)
        else:
            torch.mul(x_hat, weight.view(param_shape).to(x_hat.dtype), out=ys)
        if bias is not None:
            ys.add_(bias.view(param_shape).to(ys.dtype))
        # x̂ and r are outputs too: what the backward needs (the setup_context form saves
        # only inputs and outputs); standardize() returns y, mean and var.
        return y, mean, var, x_hat, rstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, _, dims, _, param_shape = inputs
        _, mean, var, x_hat, rstd = output
        ctx.save_for_backward(x_hat, rstd, weight)
        ctx.dims, ctx.param_shape, ctx.x_dtype = dims, param_shape, x.dtype
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.mark_non_differentiable(mean, var, x_hat, rstd)

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, stats_shape, dims, eps, param_shape):
        """Under torch.func.vmap (packed runs: normlab.pack), the members' axis becomes one
        more leading axis of the same computation, never a statistic axis: one call for all."""
        size = info.batch_size

        def leading(t, dim):
            if t is None:
                return None
            return t.movedim(dim, 0) if dim is not None else t.expand(size, *t.shape)

        x_dim, w_dim, b_dim = in_dims[:3]
        x = leading(x, x_dim)
        weight, bias = leading(weight, w_dim), leading(bias, b_dim)
        shifted = tuple(d + 1 for d in dims)
        param = weight if weight is not None else bias
        if param is not None:
            per_member = param_shape or [1] * (len(stats_shape) - param.dim() + 1) + list(
                param.shape[1:]
            )
            param_shape = [size, *per_member]
        out = Standardize.apply(x, weight, bias, [size, *stats_shape], shifted, eps, param_shape)
        return out, (0, 0, 0, 0, 0)

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar, _dx_hat, _drstd):
        x_hat, rstd, weight = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.param_shape
        dy_s = dy.to(rstd.dtype).reshape(x_hat.shape)
        m = x_hat.numel() // rstd.numel()
        # Sum first over the axes that are both statistic axes and axes γ, β are broadcast
        # over (BN: all its statistic axes; GN and IN: H*W; LN: none); what is left is small
        # for every norm but LN, and γ multiplies it there, not at full size.
        param_dims = tuple(d for d, size in enumerate(shape or [1] * x_hat.dim()) if size == 1)
        common = tuple(d for d in dims if d in param_dims)
        rest = tuple(d for d in dims if d not in common)
        p = dy_s * x_hat
        p_common, dy_common = sum_over(p, common), sum_over(dy_s, common)
        gamma = None if weight is None else weight.view(shape).to(p.dtype)
        if gamma is None:
            sum_g_xhat, sum_g = sum_over(p_common, rest), sum_over(dy_common, rest)
            r = rstd
        else:  # g = dL/dx̂ = dy·γ
            sum_g_xhat = sum_over(p_common * gamma, rest)
            sum_g = sum_over(dy_common * gamma, rest)
            r = rstd * gamma
        d_weight = d_bias = None
        others = tuple(d for d in param_dims if d not in common)
        if weight is not None and ctx.needs_input_grad[1]:
            d_weight = sum_over(p_common, others).reshape(weight.shape).to(weight.dtype)
        if ctx.bias_shape is not None and ctx.needs_input_grad[2]:
            d_bias = sum_over(dy_common, others).reshape(ctx.bias_shape)
            d_bias = d_bias.to(weight.dtype if weight is not None else dy_s.dtype)
        # dx = r·(g − mean(g) − x̂·mean(g·x̂)) = dy·rγ − x̂·(r·Σg·x̂/m) − r·Σg/m, in p's memory
        dx = torch.mul(dy_s, r, out=p)  # r broadcasts to x̂'s shape: p's memory is reused
        dx.addcmul_(x_hat, rstd * sum_g_xhat / -m).sub_(rstd * sum_g / m)
        return dx.view(dy.shape).to(ctx.x_dtype), d_weight, d_bias, None, None, None, None


def standardize(
    x: Tensor,
    dims: tuple[int, ...],
    eps: float,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    param_shape: list[int] | None = None,
    stats_shape: list[int] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(y, mean, var): x normalized with its statistics over `dims` of x viewed as
    `stats_shape` (default: x's shape), then γ and β viewed as `param_shape` in that layout
    (default: aligned with its trailing axes). y has x's shape, in the statistics' dtype; mean
    and var (kept dims) are detached, for the running statistics."""
    stats_shape = list(x.shape) if stats_shape is None else list(stats_shape)
    dims = tuple(sorted(d % len(stats_shape) for d in dims))
    param = weight if weight is not None else bias
    if param is not None and param_shape is None:
        param_shape = [1] * (len(stats_shape) - param.dim()) + list(param.shape)
    y, mean, var, _, _ = Standardize.apply(x, weight, bias, stats_shape, dims, eps, param_shape)
    return y, mean, var
