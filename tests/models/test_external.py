"""Your own model: convert() swaps any network's norms for normlab's, the norm factory fits
torchvision's and timm's norm_layer, and model=torchvision / model=timm build them by name."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from normlab.config import ConfigError
from normlab.models import build_model
from normlab.models.external import with_norms
from normlab.norms import BatchNorm2d, GroupNorm, build, convert, norm_factory
from normlab.run.build import build_module, norm_layers, require_a_swap
from tests.configs import make

F64 = torch.float64
TOLERANCE = dict(rtol=1e-10, atol=1e-10)  # float64: the parity suite's


def trained_statistics(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Running statistics away from their initial 0 and 1, as a trained network's."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(x)
    return model


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_a_converted_torchvision_model_computes_the_same_function(arch):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 64, 64, dtype=F64)
    original = trained_statistics(torchvision.models.get_model(arch, num_classes=10).to(F64), x)
    converted, record = convert(copy.deepcopy(original), "batch")
    assert record.swapped and not record.left
    assert not any(isinstance(m, nn.BatchNorm2d) for m in converted.modules())
    assert all(
        type(m) is BatchNorm2d for p, m in converted.named_modules() if "bn" in p.split(".")[-1]
    )
    for training in (True, False):
        original.train(training), converted.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(1)  # mobilenet's classifier has dropout: the same mask for both
        ya = original(xa)
        torch.manual_seed(1)
        yb = converted(xb)
        torch.testing.assert_close(yb, ya, **TOLERANCE)
        ya.square().sum().backward(), yb.square().sum().backward()
        torch.testing.assert_close(xb.grad, xa.grad, **TOLERANCE)
    for (key, a), (_, b) in zip(original.state_dict().items(), converted.state_dict().items(),
                                strict=True):  # fmt: skip
        torch.testing.assert_close(b, a, **TOLERANCE, msg=key)  # running statistics moved alike


def test_group_conversion_trains_with_the_group_count_asked_for():
    torch.manual_seed(0)
    model, record = convert(torchvision.models.resnet18(num_classes=10), "group", num_groups=4)
    groups = [m for m in model.modules() if isinstance(m, GroupNorm)]
    assert len(groups) == len(record.swapped) == 20 and {g.num_groups for g in groups} == {4}
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_the_originals_eps_and_momentum_are_kept_unless_options_set_them():
    """EfficientNet's BatchNorm: eps 1e-3, momentum 0.01."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, eps=1e-3, momentum=0.01))
    convert(model, "batch")
    assert (model[1].eps, model[1].momentum) == (1e-3, 0.01)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, eps=1e-3, momentum=0.01))
    convert(model, "batch", momentum=0.1)
    assert (model[1].eps, model[1].momentum) == (1e-3, 0.1)


def test_what_is_left_is_recorded_with_why():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.BatchNorm1d(8))
    model, record = convert(model, "group", num_groups=2)
    assert record.swapped == []
    assert [(path, kind) for path, kind, _ in record.left] == [("1", "LayerNorm"),
                                                               ("2", "BatchNorm1d")]  # fmt: skip
    assert "last dimension" in record.left[0][2] and "1-d" in record.left[1][2]


def test_subclasses_of_a_left_norm_are_left_too():
    """Found by isinstance: a subclass of nn.LayerNorm (as timm's LayerNorm is) is left, with
    the reason, not a KeyError."""

    class TokenNorm(nn.LayerNorm):
        pass

    model, record = convert(nn.Sequential(nn.Linear(4, 8), TokenNorm(8)), "group", num_groups=2)
    assert record.swapped == [] and [kind for _, kind, _ in record.left] == ["TokenNorm"]


def test_a_conversion_that_fails_leaves_the_model_unchanged():
    """All or nothing: 64 groups fit the first layer's 64 channels, not the second's 48; the
    error leaves both BatchNorms, their state and the model's structure as they were."""
    model = nn.Sequential(nn.BatchNorm2d(64), nn.BatchNorm2d(48))
    with torch.no_grad():
        model[1].running_mean.fill_(3.0)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="48"):
        convert(model, "group", num_groups=64)
    assert [type(layer) for layer in model] == [nn.BatchNorm2d, nn.BatchNorm2d]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_layer_norm_takes_its_spatial_size_from_an_example_input():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))  # fmt: skip
    with pytest.raises(ValueError, match="pass example_input"):
        convert(copy.deepcopy(model), "layer")
    model, _ = convert(model, "layer", example_input=torch.zeros(1, 3, 16, 16))
    assert model[1].normalized_shape == (8, 16, 16) and model[4].normalized_shape == (8, 8, 8)


def test_the_norm_factory_is_a_norm_layer_for_torchvision_and_torch_norms_fit_normlab_models():
    model = torchvision.models.resnet18(norm_layer=norm_factory("group", num_groups=8))
    assert isinstance(model.layer3[1].bn2, GroupNorm) and model.layer3[1].bn2.num_groups == 8
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)
    cnn = build_model("cnn", nn.BatchNorm2d)  # torch's own class as normlab's norm_layer
    assert type(cnn.stage2.conv1.norm) is nn.BatchNorm2d
    assert build("batch", 8).num_features == norm_factory("batch")(8).num_features == 8


def test_torchvision_and_timm_models_by_name_with_the_datasets_shape():
    factory = norm_factory("group", num_groups=8)
    model = build_model("torchvision", factory, in_channels=1, num_classes=10, image_size=28,
                        arch="resnet18", cifar_stem=True)  # fmt: skip
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.in_channels == 1 and isinstance(model.maxpool, nn.Identity)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    timm = pytest.importorskip("timm")
    assert timm is not None
    model = build_model("timm", factory, in_channels=1, num_classes=10, image_size=28,
                        arch="resnet18", cifar_stem=True)  # fmt: skip
    assert isinstance(model.layer1[0].bn1, GroupNorm)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "norm", "layer"),
    [("torchvision", "batch", "layer1.0.bn1"), ("timm", "group", "layer1.0.bn1")],
)
def test_the_callbacks_name_a_converted_models_layers_by_path(tmp_path, model, norm, layer):
    """Through train.py's run, callbacks=default: BN's drift and gap tags carry module paths;
    GN's train/eval gap is exactly 0."""
    if model == "timm":
        pytest.importorskip("timm")
    from tests.events import scalars
    from tests.runs import tiny_overrides, train_here

    overrides = [*tiny_overrides(tmp_path), f"model={model}", "model.arch=resnet18",
                 "model.cifar_stem=true", f"norm={norm}", "data.batch_size=4",
                 "data.eval_batch_size=8", "callbacks.drift.every_n_steps=1",
                 "callbacks.population.num_samples=16"]  # fmt: skip
    record = train_here(*overrides, run_dir=tmp_path / "run")
    assert record.metrics["status"] == "finished"
    tags = scalars(tmp_path / "run")
    if norm == "batch":
        assert f"z_drift/{layer}/mean_to_batch" in tags
        assert f"z_gap/{layer}/activation_distance" in tags
        assert f"z_precise/{layer}/mean_distance" in tags
    else:
        assert record.metrics["gap_acc"] == 0.0 and record.metrics["gap_loss"] == 0.0
        assert not any(tag.startswith("z_drift/") for tag in tags)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.arch=vit_b_16"], "model.arch=vit_b_16, made for 224x224 images, does not run "
                                  "on the data's 28x28 images"),
        (["model.arch=alexnet"], "model.arch=alexnet does not run on the data's 28x28 images"),
        (["model.arch=swin_t"], "model.arch=swin_t has no layer that norm=group replaces "
                                "(29 LayerNorm left: normalizes the last dimension"),
        (["model.arch=squeezenet1_0"], "model.arch=squeezenet1_0 has no layer that norm=group "
                                       "replaces (the model has no norm layer left)"),
        (["model.arch=swin_t", "model.cifar_stem=true"],
         "model.cifar_stem=true with model.arch=swin_t, whose stem is 4x4/4 with no max-pool"),
    ],
)  # fmt: skip
def test_a_model_that_cannot_be_built_for_the_data_is_refused_in_one_line(overrides, message):
    """Before any data is read: the reason, and what would work."""
    s = make(["model=torchvision", "data=fashion_mnist", "norm=group", *overrides])
    with pytest.raises(ConfigError) as info:
        build_module(s)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert "allowed:" in str(info.value)


def test_timm_transformers_are_refused_by_size_not_a_key_error():
    pytest.importorskip("timm")
    for arch in ("vit_tiny_patch16_224", "mixer_s16_224", "convnext_atto"):
        s = make(["model=timm", f"model.arch={arch}", "data=fashion_mnist", "norm=group"])
        with pytest.raises(ConfigError, match=rf"model.arch={arch}, made for 224x224 images"):
            build_module(s)


def test_models_with_auxiliary_heads_are_built_without_them():
    """googlenet's training forward returns logits, not GoogLeNetOutputs."""
    s = make(["model=torchvision", "model.arch=googlenet", "data=cifar10", "norm=group"])
    module = build_module(s)
    assert module.model.aux1 is None and module.model.aux2 is None
    assert module.model.train()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_partial_swap_is_said_and_recorded(caplog):
    """A model with channel norms and token norms: the console says how many of each."""

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.ln = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.LayerNorm(8)

        def forward(self, x):
            return self.ln(self.bn(self.conv(x)).mean((2, 3)))

    model = with_norms(Mixed(), norm_factory("group", num_groups=2), 3, 8)
    assert norm_layers(model) == {"norm_layers": {"swapped": 1, "left": {"LayerNorm": 1}}}
    s = make(["model=torchvision", "norm=group"])
    with caplog.at_level("WARNING"):
        require_a_swap(model.norm_conversion, s)
    assert "norm=group replaced 1 layers of model.arch=resnet18 and left 1 LayerNorm" in caplog.text
