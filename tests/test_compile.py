"""compile=true: the compiled model (CUDA graphs on a GPU) trains as the eager one, layer by
layer against torch.nn and step by step against eager normlab; probes still see every layer."""

import copy

import pytest
import torch
from torch import nn

from normlab import norms
from normlab.compile import compile_enabled, compile_model
from normlab.models import build_model
from normlab.norms import norm_factory
from tests.norms.twins import compare_state, round_trip, step_and_compare, twins

pytestmark = pytest.mark.slow  # every test compiles (10-30 s a graph on 2 cores)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]  # fmt: skip
TOL = {"cpu": 1e-5, "cuda": 1e-4}  # as the eager parity suites on each device

CASES = {
    "batch": (norms.BatchNorm2d, nn.BatchNorm2d, (8,), {}),
    "batch-cumulative": (norms.BatchNorm2d, nn.BatchNorm2d, (8,), {"momentum": None}),
    "batch-untracked": (norms.BatchNorm2d, nn.BatchNorm2d, (8,), {"track_running_stats": False}),
    "group": (norms.GroupNorm, nn.GroupNorm, (4, 8), {}),
    "instance-tracking": (norms.InstanceNorm2d, nn.InstanceNorm2d, (8,),
                          {"affine": True, "track_running_stats": True}),
    "layer": (norms.LayerNorm, nn.LayerNorm, ((8, 6, 6),), {}),
}  # fmt: skip
# Model norms as configs name them: (norm, its options, weight standardization). The remedies
# have no torch.nn twin, so they are held to their own eager steps. Batch Renorm's ramp is short
# enough that r and d clip within the steps below; ghost batches cut each batch of 4 in two.
MODEL_NORMS = {
    "batch": ("batch", {}, False),
    "group": ("group", {"num_groups": 8}, False),
    "instance": ("instance", {}, False),
    "layer": ("layer", {}, False),
    "gn_ws": ("group", {"num_groups": 8}, True),
    "batch_renorm": ("batch_renorm", {"warmup_steps": 1, "ramp_steps": 2}, False),
    "ghost_batch": ("ghost_batch", {"virtual_batch_size": 2}, False),
    "frn": ("frn", {}, False),
}


def model_with(norm: str, model: str = "cnn", **kwargs) -> nn.Module:
    name, options, weight_standardization = MODEL_NORMS[norm]
    factory = norm_factory(name, **options)
    return build_model(model, factory, weight_standardization=weight_standardization, **kwargs)


def test_auto_compiles_on_cuda_only():
    assert compile_enabled("auto", "cuda") and not compile_enabled("auto", "cpu")
    assert compile_enabled(True, "cpu") and not compile_enabled(False, "cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_layer_matches_torch(case, device):
    """The parity suite's comparisons (outputs, grads, buffers, state_dict both ways), run on
    the compiled layer: three training steps, then eval."""
    ours_cls, ref_cls, args, kwargs = CASES[case]
    torch.manual_seed(0)
    ours, ref = twins(ours_cls, ref_cls, *args, **kwargs)
    ours, ref = ours.to(device), ref.to(device)
    compile_model(ours, device)
    for _ in range(3):
        x = torch.randn(4, 8, 6, 6, device=device) * 3 + 1
        step_and_compare(ours, ref, x, TOL[device])
        compare_state(ours, ref, TOL[device])
    ours.eval(), ref.eval()
    x = torch.randn(4, 8, 6, 6, device=device)
    step_and_compare(ours, ref, x, TOL[device])
    compare_state(ours, ref, TOL[device])
    round_trip(ours_cls, ref_cls, ours, ref, args, kwargs, x, TOL[device])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("norm", ["batch", "group", "gn_ws", "batch_renorm", "ghost_batch", "frn"])
def test_compiled_steps_match_eager_steps(norm, device):
    """N SGD steps of the cnn, compiled and eager from the same weights: the losses, weights
    and buffers agree to float rounding, num_batches_tracked exactly; the state_dict keys are
    the eager model's (checkpoints do not change). Batch Renorm's r and d clip from step 2 on,
    where a partitioner that recomputes them from updated running statistics would give wrong
    gradients (normlab::renorm_correction keeps them one opaque op)."""
    torch.manual_seed(0)
    eager = model_with(norm, in_channels=3, num_classes=10, image_size=16).to(device)
    compiled = copy.deepcopy(eager)
    compile_model(compiled, device)
    x = torch.randn(6, 4, 3, 16, 16, device=device)
    chunks = 4 // MODEL_NORMS[norm][1].get("virtual_batch_size", 4)  # ghost batches per step
    y = torch.randint(0, 10, (6, 4), device=device)
    losses = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        losses[name] = []
        for step in range(len(x)):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[step]), y[step])
            loss.backward()
            optimizer.step()
            losses[name].append(loss.item())
    torch.testing.assert_close(losses["compiled"], losses["eager"], rtol=1e-4, atol=1e-5)
    a, b = compiled.state_dict(), eager.state_dict()
    assert list(a) == list(b)
    for key in b:
        if key.endswith("num_batches_tracked"):
            assert int(a[key]) == int(b[key]) == len(x) * chunks, key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("model", ["cnn", "resnet20"])
@pytest.mark.parametrize("norm", list(MODEL_NORMS))
def test_every_norm_compiles_into_one_graph(norm, model):
    """No graph break: a break splits the model into frames that recompile per layer shape and
    run eagerly past torch._dynamo's recompile limit (ResNet-20 did, through a generator)."""
    net = model_with(norm, model)
    for mode in (net.train, net.eval):
        mode()
        explained = torch._dynamo.explain(net)(torch.randn(4, 3, 32, 32))
        assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
