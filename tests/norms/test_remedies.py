"""The small-batch remedies: Batch Renorm, Ghost BN, FRN and Weight Standardization, each
against its formula or the torch.nn layer it reduces to."""

import pytest
import torch
from torch import nn

from normlab import norms
from normlab.models import build_model
from normlab.models.weight_standardization import WSConv2d
from normlab.norms import norm_factory
from tests.norms.twins import assert_close, compare_state, step_and_compare

F64 = torch.float64


def batch_norm_twin(ours: nn.Module, **kwargs) -> nn.BatchNorm2d:
    ref = nn.BatchNorm2d(ours.num_features, dtype=ours.weight.dtype, **kwargs)
    with torch.no_grad():
        ref.weight.copy_(torch.randn_like(ref.weight))
        ref.bias.copy_(torch.randn_like(ref.bias))
    ours.load_state_dict(ref.state_dict())
    return ref


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_renorm_with_r_max_1_and_d_max_0_is_batch_norm(momentum):
    torch.manual_seed(0)
    ours = norms.BatchRenorm2d(6, momentum=momentum, r_max=1.0, d_max=0.0)
    ref = batch_norm_twin(ours, momentum=momentum)
    for _ in range(3):
        x = torch.randn(4, 6, 5, 5) * 3 + 1
        step_and_compare(ours, ref, x, 1e-5)
        compare_state(ours, ref, 1e-5)
    ours.eval(), ref.eval()
    step_and_compare(ours, ref, torch.randn(4, 6, 5, 5), 1e-5)


def renorm_formula(x, gamma, beta, running_mean, running_var, eps, r_max, d_max):
    """The paper's forward with autograd, r and d stopped: the reference for value and grads."""
    dims = (0, 2, 3)
    view = (1, -1, 1, 1)
    mu_b = x.mean(dims, keepdim=True)
    sigma_b = torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + eps)
    sigma = torch.sqrt(running_var + eps).view(view)
    r = (sigma_b / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mu_b - running_mean.view(view)) / sigma).clamp(-d_max, d_max).detach()
    return ((x - mu_b) / sigma_b * r + d) * gamma.view(view) + beta.view(view)


def test_batch_renorm_matches_the_papers_formula_with_its_ramp():
    """r and d clipped by the ramped bounds at each step; gradients treat them as constants;
    the running statistics update as BatchNorm's."""
    torch.manual_seed(0)
    layer = norms.BatchRenorm2d(5, r_max=3.0, d_max=2.0, warmup_steps=1, ramp_steps=4, dtype=F64)
    bn = batch_norm_twin(layer)  # same running-stat update rule
    with torch.no_grad():  # running statistics far from the batches', so r and d clip
        for m in (layer, bn):
            m.running_mean.copy_(torch.linspace(-2, 2, 5, dtype=F64))
            m.running_var.copy_(torch.linspace(0.05, 9, 5, dtype=F64))
    expected_bounds = [(1.0, 0.0), (1.0, 0.0), (1.5, 0.5), (2.0, 1.0), (2.5, 1.5), (3.0, 2.0)]
    for r_max, d_max in expected_bounds:
        step = layer.num_batches_tracked.clone()
        torch.testing.assert_close(
            tuple(float(b) for b in layer.bounds(step)), (r_max, d_max), rtol=0, atol=1e-12
        )
        x = (torch.randn(4, 5, 3, 3, dtype=F64) * 2 + 0.5).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        gamma = layer.weight.detach().clone().requires_grad_(True)
        beta = layer.bias.detach().clone().requires_grad_(True)
        ref = renorm_formula(x_ref, gamma, beta, layer.running_mean.clone(),
                             layer.running_var.clone(), layer.eps, r_max, d_max)  # fmt: skip
        y = layer(x)
        bn(x.detach())  # advances BN's running statistics on the same batch
        grad = torch.randn_like(y)
        y.backward(grad)
        ref.backward(grad)
        assert_close(y, ref, 1e-10, "output")
        assert_close(x.grad, x_ref.grad, 1e-10, "input grad")
        assert_close(layer.weight.grad, gamma.grad, 1e-10, "weight grad")
        assert_close(layer.bias.grad, beta.grad, 1e-10, "bias grad")
        layer.zero_grad()
        compare_state(layer, bn, 1e-10)


def test_batch_renorm_needs_running_statistics():
    with pytest.raises(ValueError, match="track_running_stats=true"):
        norms.BatchRenorm2d(4, track_running_stats=False)


def test_ghost_batch_with_the_whole_batch_is_batch_norm():
    torch.manual_seed(0)
    ours = norms.GhostBatchNorm2d(6, virtual_batch_size=8)
    ref = batch_norm_twin(ours)
    for _ in range(2):
        step_and_compare(ours, ref, torch.randn(8, 6, 3, 3) * 3 + 1, 1e-5)
        compare_state(ours, ref, 1e-5)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_ghost_batch_is_batch_norm_run_on_each_chunk(momentum):
    """Outputs and input grads chunk by chunk, parameter grads summed over chunks, running
    statistics after one update per chunk in order (as one BN that saw the chunks)."""
    torch.manual_seed(0)
    ours = norms.GhostBatchNorm2d(6, momentum=momentum, virtual_batch_size=2, dtype=F64)
    ref = batch_norm_twin(ours, momentum=momentum)
    for _ in range(2):
        x = torch.randn(8, 6, 3, 3, dtype=F64) * 3 + 1
        xo, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        yo = ours(xo)
        yr = torch.cat([ref(chunk) for chunk in xr.split(2)])
        grad = torch.randn_like(yr)
        yo.backward(grad)
        yr.backward(grad)
        assert_close(yo, yr, 1e-10, "output")
        assert_close(xo.grad, xr.grad, 1e-10, "input grad")
        for name in ("weight", "bias"):
            assert_close(getattr(ours, name).grad, getattr(ref, name).grad, 1e-10, name)
        ours.zero_grad(), ref.zero_grad()
        compare_state(ours, ref, 1e-10)
    ours.eval(), ref.eval()
    x = torch.randn(5, 6, 3, 3, dtype=F64)
    assert_close(ours(x), ref(x), 1e-10, "eval output")


def test_ghost_batch_refuses_a_batch_its_virtual_size_does_not_divide():
    layer = norms.GhostBatchNorm2d(4, virtual_batch_size=3)
    with pytest.raises(ValueError, match=r"^batch of 8 samples: virtual_batch_size=3 must "
                       r"divide it \(valid: \[1, 2, 4, 8\]\)$"):  # fmt: skip
        layer(torch.randn(8, 4, 2, 2))


def test_frn_matches_its_formula_and_gradchecks():
    torch.manual_seed(0)
    layer = norms.FilterResponseNorm2d(3, eps=1e-3, dtype=F64)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(2, 3, 4, 4, dtype=F64, requires_grad=True)
    nu2 = (x * x).mean(dim=(2, 3), keepdim=True)
    view = (1, -1, 1, 1)
    y = layer.weight.view(view) * x / torch.sqrt(nu2 + 1e-3) + layer.bias.view(view)
    expected = torch.max(y, layer.tau.view(view))
    assert_close(layer(x), expected, 1e-12, "output")
    assert torch.autograd.gradcheck(layer, (x,))
    params = tuple(layer.parameters())
    assert torch.autograd.gradcheck(
        lambda w, b, t: torch.func.functional_call(layer, {"weight": w, "bias": b, "tau": t}, x),
        params,
    )


def test_weight_standardization_convolves_with_the_standardized_weight():
    torch.manual_seed(0)
    conv = WSConv2d(3, 4, 3, padding=1, dtype=F64)
    w = conv.weight.detach()
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    std = w.std(dim=(1, 2, 3), keepdim=True)  # unbiased, as the paper's code
    x = torch.randn(2, 3, 5, 5, dtype=F64)
    expected = nn.functional.conv2d(x, (w - mean) / (std + 1e-5), conv.bias, padding=1)
    assert_close(conv(x), expected, 1e-12, "output")


def test_weight_standardization_reaches_every_conv_and_keeps_the_state_dict():
    torch.manual_seed(0)
    plain = build_model("resnet20", norm_factory("group", num_groups=8))
    torch.manual_seed(0)
    ws = build_model("resnet20", norm_factory("group", num_groups=8), weight_standardization=True)
    convs = [m for m in ws.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, WSConv2d) for m in convs)
    a, b = plain.state_dict(), ws.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(plain(x), ws(x))
