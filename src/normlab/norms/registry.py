"""The norm registry and factory: models ask for a norm by name and never name a class.

A new norm is one module that defines the layer and registers a builder with `@register(name)`.
A builder takes ``(num_channels, spatial_size=None, **options)`` and returns a module for
(N, C, H, W) feature maps; ``spatial_size`` is (H, W), needed only by norms whose parameters
cover space (``layer`` with elementwise affine).
"""

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from enum import Enum

from torch import nn

from normlab.errors import require

NormBuilder = Callable[..., nn.Module]
BatchCheck = Callable[[dict, int], None]
NORMS: dict[str, NormBuilder] = {}
BATCH_DEPENDENT: set[str] = set()  # norms whose training statistics come from the batch
BATCH_CHECKS: dict[str, BatchCheck] = {}
OPTION_RULES: dict[str, Callable[[dict], dict]] = {}


def register(
    name: str,
    *,
    batch_dependent: bool = False,
    batch_check: BatchCheck | None = None,
    option_rule: Callable[[dict], dict] | None = None,
) -> Callable[[NormBuilder], NormBuilder]:
    """Register a builder under `name` (lower case, as used on the command line: norm=<name>).
    `batch_dependent`: its training statistics come from the batch (BN and its variants);
    `batch_check(options, batch_size)` refuses a batch size the norm cannot use (ConfigError);
    `option_rule(options)` returns the options the builder gets from the configured ones."""

    def decorate(builder: NormBuilder) -> NormBuilder:
        if name in NORMS:
            raise ValueError(f"norm {name!r} is already registered")
        NORMS[name] = builder
        if batch_dependent:
            BATCH_DEPENDENT.add(name)
        if batch_check is not None:
            BATCH_CHECKS[name] = batch_check
        if option_rule is not None:
            OPTION_RULES[name] = option_rule
        return builder

    return decorate


# Range rules shared by every norm that has the option: (holds, what is allowed).
OPTION_RANGES: dict[str, tuple[Callable[[typing.Any], bool], str]] = {
    "eps": (lambda v: v > 0, "a number > 0"),
    "momentum": (lambda v: v is None or 0 <= v <= 1, "a number in [0, 1], or null (cumulative)"),
    "num_groups": (lambda v: v is None or v >= 1, "an integer >= 1, or null"),
    "group_size": (lambda v: v is None or v >= 1, "an integer >= 1, or null"),
    "virtual_batch_size": (lambda v: v >= 2, "an integer >= 2"),
    "r_max": (lambda v: v >= 1, "a number >= 1"),
    "d_max": (lambda v: v >= 0, "a number >= 0"),
    "warmup_steps": (lambda v: v >= 0, "an integer >= 0"),
    "ramp_steps": (lambda v: v >= 0, "an integer >= 0"),
}


def check_options(name: str, options: dict) -> None:
    """ConfigError for the first option of norm `name` outside its range (OPTION_RANGES)."""
    for key, value in options.items():
        if key in OPTION_RANGES:
            holds, allowed = OPTION_RANGES[key]
            require(holds(value), f"norm.{key}", value, allowed)


def effective_options(name: str, options: dict) -> dict:
    """The options norm `name`'s builder gets from the configured ones (its option_rule)."""
    return OPTION_RULES[name](dict(options)) if name in OPTION_RULES else dict(options)


def check_batch(name: str, options: dict, batch_size: int) -> None:
    """ConfigError when norm `name` cannot normalize a batch of `batch_size` samples."""
    independent = sorted(set(NORMS) - BATCH_DEPENDENT - set(BATCH_CHECKS))
    if name in BATCH_DEPENDENT:
        require(batch_size >= 2, "data.batch_size", batch_size,
                "an integer >= 2 (batch statistics need 2 samples), or a norm without batch "
                f"dependence: {', '.join(independent)}",
                f"with norm={name}")  # fmt: skip
    if name in BATCH_CHECKS:
        BATCH_CHECKS[name](options, batch_size)


def config_type(annotation):
    """The type a structured config can hold for a builder's annotation: X | None -> Optional[X];
    any other union (e.g. bool | str) -> Any, left to the builder to check."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and members[0] in (int, float, bool, str):
            return typing.Optional[members[0]]  # noqa: UP045 (OmegaConf reads Optional)
        return typing.Any
    if annotation in (int, float, bool, str) or (
        isinstance(annotation, type) and issubclass(annotation, Enum)
    ):
        return annotation
    return typing.Any


@functools.cache
def schema(name: str) -> type:
    """The structured-config schema of norm `name` (Hydra group `norm`): its `name` and the
    builder's keyword options with their types and defaults; ranges checked on construction."""
    params = inspect.signature(NORMS[name]).parameters.values()
    hints = typing.get_type_hints(NORMS[name])
    fields = [("name", str, dataclasses.field(default=name))]
    for p in params:
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            fields.append((p.name, config_type(hints.get(p.name, typing.Any)),
                           dataclasses.field(default=p.default)))  # fmt: skip

    def __post_init__(self):
        options = dataclasses.asdict(self)
        require(options.pop("name") == name, "norm.name", self.name, name, f"in norm={name}")
        check_options(name, options)

    title = "".join(part.title() for part in name.split("_")) + "NormOptions"
    return dataclasses.make_dataclass(title, fields, namespace={"__post_init__": __post_init__})


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
