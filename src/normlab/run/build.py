"""The LightningModule for a run's settings: its norm in its model for its dataset; a norm that
cannot be built at some layer, or replaces none of an external model's, refused in one line."""

import logging

from torch import nn

from normlab.config import ConfigError, Settings
from normlab.data import dataset_spec
from normlab.models import build_model
from normlab.module import Classifier
from normlab.norms import norm_factory
from normlab.norms.convert import Conversion

log = logging.getLogger(__name__)


class NormSiteError(nn.Identity):
    """Stands where a norm could not be built, so the error can name that layer."""

    def __init__(self, num_channels: int, error: ValueError):
        super().__init__()
        self.num_channels, self.error = num_channels, error


class RecordingFactory:
    """A norm factory that keeps building past an impossible layer, to report it by name."""

    def __init__(self, factory):
        self.factory = factory

    def __call__(self, num_channels: int, spatial_size=None) -> nn.Module:  # norm_factory's form
        try:
            return self.factory(num_channels, spatial_size)
        except ValueError as error:
            return NormSiteError(num_channels, error)

    @staticmethod
    def raise_first_error(model: nn.Module) -> None:
        for name, module in model.named_modules():
            if isinstance(module, NormSiteError):
                raise ConfigError(f"layer {name} ({module.num_channels} channels): {module.error}")


def build_module(s: Settings) -> Classifier:
    """The model for the settings' norm, model and dataset; ConfigError for a norm that cannot
    be built at some layer (naming it), before any data is read. Its lr is the single-device
    one: make_trainer's `settle_lr` sets it for the devices the run has."""
    spec = dataset_spec(s.data.name)
    factory = RecordingFactory(norm_factory(s.norm_name, **s.norm_options))
    try:
        model = build_model(s.model.name, factory, in_channels=spec.in_channels,
                            num_classes=spec.num_classes, image_size=spec.image_size,
                            **s.model.builder_options())  # fmt: skip
    except ValueError as error:
        raise ConfigError(str(error)) from None
    factory.raise_first_error(model)
    conversion = getattr(model, "norm_conversion", None)  # torchvision and timm models
    if conversion is not None:
        require_a_swap(conversion, s)
    return Classifier(model, spec.num_classes, s.learning_rate(), s.optim)


def norm_layers(model: nn.Module) -> dict:
    """For a torchvision or timm model, {"norm_layers": {"swapped": n, "left": {class: n}}}."""
    conversion = getattr(model, "norm_conversion", None)
    if conversion is None:
        return {}
    return {"norm_layers": {"swapped": len(conversion.swapped), "left": conversion.left_counts()}}


def require_a_swap(conversion: Conversion, s: Settings) -> None:
    """ConfigError when norm=<name> replaces no layer of an external model; where some layers
    are left, the console says how many of each."""
    left = conversion.left_counts()
    shown = ", ".join(f"{n} {kind}" for kind, n in left.items()) or "the model has no norm layer"
    arch = getattr(s.model, "arch", s.model.name)
    if not conversion.swapped:
        reasons = "; ".join(sorted({why for _, _, why in conversion.left}))
        why = f": {reasons}" if reasons else ""
        raise ConfigError(f"model.arch={arch} has no layer that norm={s.norm_name} replaces "
                          f"({shown} left{why}); allowed: a model with channel norms "
                          "(BatchNorm2d, GroupNorm, ...), as resnet18")  # fmt: skip
    if left:
        log.warning("norm=%s replaced %d layers of model.arch=%s and left %s",
                    s.norm_name, len(conversion.swapped), arch, shown)  # fmt: skip
