"""Probing norm layers leaves no trace; the population estimator is the variance of all values."""

import torch
from torch import nn

from normlab.callbacks import batch_statistics, population_statistics, running_stat_layers
from normlab.models import build_model
from normlab.norms import BatchNorm2d, InstanceNorm2d, norm_factory


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_layers_are_found_by_their_buffers():
    model = nn.Sequential(
        BatchNorm2d(3), InstanceNorm2d(3), InstanceNorm2d(3, track_running_stats=True),
        nn.BatchNorm2d(3), BatchNorm2d(3, track_running_stats=False),
    )  # fmt: skip
    assert sorted(running_stat_layers(model)) == ["0", "2", "3"]


def test_batch_statistics_leaves_buffers_bit_identical_and_modes_as_found():
    torch.manual_seed(0)
    model = build_model("resnet20", norm_factory("batch"))
    model(torch.randn(8, 3, 32, 32))  # running stats away from their initial values
    model.eval()
    model.stages[0].train()  # a mixed state, to check that every mode comes back
    before, modes = state(model), [m.training for m in model.modules()]
    with torch.no_grad(), batch_statistics(model):
        assert all(layer.training for layer in running_stat_layers(model).values())
        assert not model.stem[0].training
        out = model(torch.randn(8, 3, 32, 32) + 3)
    after = state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == modes
    model.train()
    model(torch.randn(8, 3, 32, 32) + 3)  # without the guard the same call moves the buffers
    assert not torch.equal(
        before["stem.norm.running_mean"], model.state_dict()["stem.norm.running_mean"]
    )
    assert torch.isfinite(out).all()


def test_population_statistics_are_those_of_all_the_values():
    torch.manual_seed(0)
    model = nn.Sequential(BatchNorm2d(3))
    batches = [(torch.randn(4, 3, 5, 5) * (i + 1) + i, None) for i in range(6)]
    before = state(model)
    ((name, (mean, var)),) = population_statistics(model, batches, "cpu").items()
    values = torch.cat([x for x, _ in batches])
    torch.testing.assert_close(mean, values.mean((0, 2, 3)))
    torch.testing.assert_close(var, values.var((0, 2, 3), correction=0))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert name == "0" and model.training
