"""normlab layers are the same functions as torch.nn's, for every option, on random shapes."""

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from normlab import norms
from tests.norms.twins import (
    TOLERANCE,
    compare_state,
    rel_err,
    round_trip,
    step_and_compare,
    twins,
)

DTYPES = st.sampled_from([torch.float32, torch.float64])
MOMENTA = st.sampled_from([0.1, 0.5, 1.0, 0.0, None])


def train_then_eval(ours_cls, ref_cls, args, kwargs, shapes, dtype, values_per_stat):
    """Several training steps (output, grads, buffers each step), then eval, then the state_dict.

    Shapes with fewer than 3 values per statistic are dropped here: over 1 value the output is
    the constant beta (see test_numerics); over 2, the input gradient is pure cancellation,
    (1 - x_hat^2) = eps / (var + eps), and test_two_values_per_statistic compares it on its
    natural scale.
    """
    torch.manual_seed(0)
    shapes = [s for s in shapes if values_per_stat(s) > 2]
    assume(shapes)
    tol = TOLERANCE[dtype]
    ours, ref = twins(ours_cls, ref_cls, *args, dtype=dtype, **kwargs)
    for shape in shapes:
        x = torch.randn(shape, dtype=dtype) * 3 + 1
        step_and_compare(ours, ref, x, tol)
        compare_state(ours, ref, tol)
    ours.eval()
    ref.eval()
    x = torch.randn(shapes[0], dtype=dtype)
    step_and_compare(ours, ref, x, tol)
    compare_state(ours, ref, tol)  # eval leaves the running statistics frozen on both
    round_trip(ours_cls, ref_cls, ours, ref, args, kwargs, x, tol)


@st.composite
def feature_maps(draw, min_values=3, steps=3):
    """1 to `steps` shapes (N, C, H, W) sharing C, each with >= min_values values per channel."""
    c = draw(st.integers(1, 8))
    shapes = []
    for _ in range(draw(st.integers(1, steps))):
        n, h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
        if n * h * w < min_values:
            n = min_values
        shapes.append((n, c, h, w))
    return shapes


@given(
    shapes=feature_maps(),
    momentum=MOMENTA,
    affine=st.booleans(),
    bias=st.booleans(),
    track=st.booleans(),
    dtype=DTYPES,
)
def test_batchnorm2d(shapes, momentum, affine, bias, track, dtype):
    kwargs = dict(momentum=momentum, affine=affine, track_running_stats=track, bias=bias)
    args = (shapes[0][1],)
    train_then_eval(
        norms.BatchNorm2d,
        torch.nn.BatchNorm2d,
        args,
        kwargs,
        shapes,
        dtype,
        lambda s: s[0] * s[2] * s[3],
    )


@given(
    n=st.integers(2, 6),
    c=st.integers(1, 6),
    length=st.one_of(st.none(), st.integers(1, 5)),
    momentum=MOMENTA,
    affine=st.booleans(),
    track=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3, 0.5]),
    dtype=DTYPES,
)
def test_batchnorm1d(n, c, length, momentum, affine, track, eps, dtype):
    shape = (n, c) if length is None else (n, c, length)
    kwargs = dict(eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
    values = n * (length or 1)
    train_then_eval(
        norms.BatchNorm1d,
        torch.nn.BatchNorm1d,
        (c,),
        kwargs,
        [shape, shape],
        dtype,
        lambda s: values,
    )


@given(
    data=st.data(),
    shapes=feature_maps(min_values=1),
    affine=st.booleans(),
    bias=st.booleans(),
    dtype=DTYPES,
)
def test_groupnorm(data, shapes, affine, bias, dtype):
    c = shapes[0][1]
    groups = data.draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    kwargs = dict(affine=affine, bias=bias)
    train_then_eval(
        norms.GroupNorm,
        torch.nn.GroupNorm,
        (groups, c),
        kwargs,
        shapes,
        dtype,
        lambda s: c // groups * s[2] * s[3],
    )


@given(
    shapes=feature_maps(),
    momentum=MOMENTA,
    affine=st.booleans(),
    track=st.booleans(),
    unbatched=st.booleans(),
    dtype=DTYPES,
)
def test_instancenorm2d(shapes, momentum, affine, track, unbatched, dtype):
    shapes = [(n, c, h, w) if h * w > 2 else (n, c, h, 3) for n, c, h, w in shapes]
    if unbatched:
        shapes = [s[1:] for s in shapes]
    kwargs = dict(momentum=momentum, affine=affine, track_running_stats=track)
    c = shapes[0][-3]
    train_then_eval(
        norms.InstanceNorm2d,
        torch.nn.InstanceNorm2d,
        (c,),
        kwargs,
        shapes,
        dtype,
        lambda s: s[-1] * s[-2],
    )


@given(
    shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    data=st.data(),
    affine=st.booleans(),
    bias=st.booleans(),
    dtype=DTYPES,
)
def test_layernorm(shape, data, affine, bias, dtype):
    k = data.draw(st.integers(1, len(shape) - 1))
    normalized = shape[-k:]
    if len(normalized) == 1 and data.draw(st.booleans()):
        normalized = normalized[0]  # the int form
    kwargs = dict(elementwise_affine=affine, bias=bias)
    shapes = [tuple(shape), (shape[0] + 1, *shape[1:])]
    values = math.prod(shape[-k:])
    train_then_eval(
        norms.LayerNorm, torch.nn.LayerNorm, (normalized,), kwargs, shapes, dtype, lambda s: values
    )


def test_layernorm_over_chw_normalizes_each_sample():
    """The seed's example: input [4, 6, 3, 3], normalized_shape [6, 3, 3]."""
    x = torch.randn(4, 6, 3, 3) * 5 + 2
    y = norms.LayerNorm([6, 3, 3])(x)
    assert norms.LayerNorm([6, 3, 3]).weight.shape == (6, 3, 3)
    per_sample = y.flatten(1)
    torch.testing.assert_close(per_sample.mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_sample.var(1, correction=0), torch.ones(4), atol=1e-3, rtol=0)


def test_zero_size_batch_matches_torch():
    ours, ref = twins(norms.BatchNorm2d, torch.nn.BatchNorm2d, 3)
    x = torch.randn(0, 3, 4, 4)
    step_and_compare(ours, ref, x, 1e-6)
    compare_state(ours, ref, 1e-6)
    assert ours.num_batches_tracked.item() == 1


def test_momentum_none_is_cumulative_average():
    bn = norms.BatchNorm1d(2, momentum=None)
    batches = [torch.randn(8, 2) * (i + 1) + i for i in range(5)]
    for b in batches:
        bn(b)
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([b.var(0) for b in batches]).mean(0))
    assert bn.num_batches_tracked.item() == 5


def test_running_stats_are_updated_in_place():
    """The same storage before and after, as CUDA graphs and optimizers holding references need."""
    for layer in (
        norms.BatchNorm2d(3),
        norms.BatchNorm2d(3, momentum=None),
        norms.InstanceNorm2d(3, track_running_stats=True),
    ):
        ptrs = [b.data_ptr() for b in layer.buffers()]
        layer(torch.randn(4, 3, 5, 5))
        assert [b.data_ptr() for b in layer.buffers()] == ptrs


def test_eval_freezes_running_stats():
    bn = norms.BatchNorm2d(3)
    bn(torch.randn(4, 3, 5, 5))
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    bn.eval()
    bn(torch.randn(4, 3, 5, 5) + 10)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_state_dict_names_match_torch():
    pairs = [
        (norms.BatchNorm2d(4), torch.nn.BatchNorm2d(4)),
        (norms.BatchNorm1d(4, affine=True, bias=False), torch.nn.BatchNorm1d(4, bias=False)),
        (norms.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
        (
            norms.InstanceNorm2d(4, 1e-5, 0.1, True, True),
            torch.nn.InstanceNorm2d(4, 1e-5, 0.1, True, True),
        ),
        (norms.LayerNorm([4, 2, 2]), torch.nn.LayerNorm([4, 2, 2])),
    ]
    for ours, ref in pairs:
        assert list(ours.state_dict()) == list(ref.state_dict())
        assert repr(ours) == repr(ref)
        assert ours.state_dict()._metadata[""].get("version") == ref.state_dict()._metadata[""].get(
            "version"
        )


def test_loads_a_checkpoint_without_num_batches_tracked():
    """Pre-version-2 torch checkpoints lack num_batches_tracked; torch fills 0, and so do we."""
    state = torch.nn.BatchNorm2d(3).state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1
    bn = norms.BatchNorm2d(3)
    bn.num_batches_tracked.fill_(7)
    bn.load_state_dict(state)
    assert bn.num_batches_tracked.item() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_values_per_statistic(dtype):
    """N=2 BatchNorm: each output is +-sqrt(var / (var + eps)) and the input gradient is eps-sized.

    Outputs, buffers and affine grads agree to the usual relative tolerance; the input gradient
    agrees to that tolerance times its terms' scale, max|grad_out * gamma| / sigma.
    """
    torch.manual_seed(0)
    tol = TOLERANCE[dtype]
    ours, ref = twins(norms.BatchNorm1d, torch.nn.BatchNorm1d, 3, dtype=dtype)
    x = torch.randn(2, 3, dtype=dtype) * 3
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yo, yr = ours(xo), ref(xr)
    assert rel_err(yo, yr) <= tol
    grad = torch.randn_like(yr)
    yo.backward(grad)
    yr.backward(grad)
    assert rel_err(ours.weight.grad, ref.weight.grad) <= tol
    assert rel_err(ours.bias.grad, ref.bias.grad) <= tol
    sigma = x.var(0, correction=0).add(ref.eps).sqrt()
    term_scale = (grad.abs() * ref.weight.abs() / sigma).max()
    assert (xo.grad - xr.grad).abs().max() <= tol * term_scale
    compare_state(ours, ref, tol)
