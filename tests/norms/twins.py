"""Run a normlab layer and its torch.nn twin side by side and compare everything they produce."""

import torch

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference, relative to the reference's largest magnitude."""
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, (ours.shape, ref.shape)
    if ref.numel() == 0:
        return 0.0
    scale = ref.detach().abs().max().double().clamp_min(1e-30)
    return ((ours.detach().double() - ref.detach().double()).abs().max() / scale).item()


def assert_close(ours, ref, tol, what):
    if ref is None:
        assert ours is None, f"{what}: normlab has a value where torch has None"
        return
    err = rel_err(ours, ref)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.0e}"


def twins(ours_cls, ref_cls, *args, dtype=torch.float32, **kwargs):
    """Both layers built with the same arguments, with identical random affine parameters."""
    ours = ours_cls(*args, dtype=dtype, **kwargs)
    ref = ref_cls(*args, dtype=dtype, **kwargs)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p))
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def step_and_compare(ours, ref, x, tol):
    """One forward and backward through both; compare output and the input, weight, bias grads."""
    xo = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    yo, yr = ours(xo), ref(xr)
    assert_close(yo, yr, tol, "output")
    grad = torch.randn_like(yr)
    yo.backward(grad)
    yr.backward(grad)
    assert_close(xo.grad, xr.grad, tol, "input grad")
    for name, p in ref.named_parameters():
        assert_close(getattr(ours, name).grad, p.grad, tol, f"{name} grad")
    ours.zero_grad()
    ref.zero_grad()


def compare_state(ours, ref, tol):
    """Same buffer and parameter names, and the same values (num_batches_tracked exactly)."""
    so, sr = ours.state_dict(), ref.state_dict()
    assert list(so) == list(sr)
    for key in sr:
        if key.endswith("num_batches_tracked"):
            assert torch.equal(so[key], sr[key]), key
        else:
            assert_close(so[key], sr[key], tol, key)


def round_trip(ours_cls, ref_cls, ours, ref, args, kwargs, x, tol):
    """state_dict from each into a fresh twin of the other: eval outputs agree both ways."""
    ours.eval()
    ref.eval()
    into_ref = ref_cls(*args, dtype=x.dtype, device=x.device, **kwargs)
    into_ref.load_state_dict(ours.state_dict())
    into_ours = ours_cls(*args, dtype=x.dtype, device=x.device, **kwargs)
    into_ours.load_state_dict(ref.state_dict())
    into_ref.eval()
    into_ours.eval()
    with torch.no_grad():
        assert_close(into_ref(x), ref(x), tol, "torch layer loaded from normlab")
        assert_close(into_ours(x), ref(x), tol, "normlab layer loaded from torch")
