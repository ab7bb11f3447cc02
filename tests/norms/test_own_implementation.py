"""The layers compute with plain tensor ops: no aten norm kernel runs, forward or backward."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from normlab import norms


class OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def norm_ops(layer, x):
    """The aten ops with 'norm' in their name that a forward and backward of `layer` runs."""
    with OpRecorder() as recorder:
        layer(x.requires_grad_(True)).sum().backward()
    return {op for op in recorder.ops if "norm" in op}


LAYERS = {
    "batch": (lambda m: m.BatchNorm2d(4), (3, 4, 5, 5)),
    "batch eval": (lambda m: m.BatchNorm2d(4).eval(), (3, 4, 5, 5)),
    "group": (lambda m: m.GroupNorm(2, 4), (3, 4, 5, 5)),
    "instance": (
        lambda m: m.InstanceNorm2d(4, affine=True, track_running_stats=True),
        (3, 4, 5, 5),
    ),
    "layer": (lambda m: m.LayerNorm((4, 5, 5)), (3, 4, 5, 5)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_no_aten_norm_kernel(name):
    make, shape = LAYERS[name]
    assert norm_ops(make(torch.nn), torch.randn(shape)), "the recorder must see torch.nn's kernel"
    assert norm_ops(make(norms), torch.randn(shape)) == set()
