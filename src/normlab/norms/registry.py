"""The norm registry and factory: models ask for a norm by name and never name a class.

A new norm is one module that defines the layer and registers a builder with `@register(name)`.
A builder takes ``(num_channels, spatial_size=None, **options)`` and returns a module for
(N, C, H, W) feature maps; ``spatial_size`` is (H, W), needed only by norms whose parameters
cover space (``layer`` with elementwise affine).
"""

import functools
import inspect
from collections.abc import Callable

from torch import nn

NormBuilder = Callable[..., nn.Module]
NORMS: dict[str, NormBuilder] = {}


def register(name: str) -> Callable[[NormBuilder], NormBuilder]:
    """Register a builder under `name` (lower case, as used on the command line: norm=<name>)."""

    def decorate(builder: NormBuilder) -> NormBuilder:
        if name in NORMS:
            raise ValueError(f"norm {name!r} is already registered")
        NORMS[name] = builder
        return builder

    return decorate


def options_of(name: str) -> list[str]:
    """The keyword options the norm `name` accepts."""
    params = inspect.signature(NORMS[name]).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check(name: str, options) -> None:
    """Raise one ValueError for an unknown norm name or option, naming the valid ones."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; valid norms: {', '.join(sorted(NORMS))}")
    unknown = sorted(set(options) - set(options_of(name)))
    if unknown:
        raise ValueError(
            f"norm {name!r} has no option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(options_of(name)) or 'none'}"
        )


def build(name: str, num_channels: int, spatial_size=None, **options) -> nn.Module:
    """Build norm `name` for a feature map of `num_channels` channels and (H, W) `spatial_size`."""
    check(name, options)
    return NORMS[name](num_channels, spatial_size, **options)


def norm_factory(name: str, **options) -> Callable[..., nn.Module]:
    """A callable ``norm_layer(num_channels, spatial_size=None)``, the contract models rely on."""
    check(name, options)
    return functools.partial(build, name, **options)


@register("none")
def build_none(num_channels: int, spatial_size=None) -> nn.Module:
    """No normalization: the identity."""
    return nn.Identity()
