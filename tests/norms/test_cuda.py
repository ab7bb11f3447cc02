"""On a GPU, normlab layers match torch.nn's CUDA kernels (skipped where there is no CUDA)."""

import pytest
import torch

from normlab import norms
from tests.norms.twins import compare_state, round_trip, step_and_compare, twins

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# Over 16k values per statistic the summation order differs from cuDNN's: 1e-4, not CPU's 1e-5.
TOL = 1e-4
CASES = {
    "batch": (norms.BatchNorm2d, torch.nn.BatchNorm2d, (64,), {}),
    "batch-cumulative": (norms.BatchNorm2d, torch.nn.BatchNorm2d, (64,), {"momentum": None}),
    "group-32": (norms.GroupNorm, torch.nn.GroupNorm, (32, 64), {}),
    "group-8": (norms.GroupNorm, torch.nn.GroupNorm, (8, 64), {}),
    "instance-tracking": (norms.InstanceNorm2d, torch.nn.InstanceNorm2d, (64,),
                          {"affine": True, "track_running_stats": True}),
    "layer": (norms.LayerNorm, torch.nn.LayerNorm, ((64, 16, 16),), {}),
}  # fmt: skip


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("case", list(CASES))
def test_training_steps_eval_and_state_match_torch_on_cuda(case, memory_format):
    ours_cls, ref_cls, args, kwargs = CASES[case]
    torch.manual_seed(0)
    ours, ref = twins(ours_cls, ref_cls, *args, **kwargs)
    ours, ref = ours.cuda(), ref.cuda()
    for _ in range(3):
        x = (torch.randn(32, 64, 16, 16, device="cuda") * 3 + 1).to(memory_format=memory_format)
        step_and_compare(ours, ref, x, TOL)
        compare_state(ours, ref, TOL)
    ours.eval(), ref.eval()
    x = torch.randn(32, 64, 16, 16, device="cuda").to(memory_format=memory_format)
    step_and_compare(ours, ref, x, TOL)
    round_trip(ours_cls, ref_cls, ours, ref, args, kwargs, x, TOL)
