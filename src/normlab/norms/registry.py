"""The norm registry and factory: models ask for a norm by name and never name a class.

A new norm is one module that defines the layer and registers a builder with `@register(name,
**facts)`: its NormSpec holds every fact the rest of normlab needs (config schema, batch
statistics, SyncBN, running statistics, ranges, report columns).
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
from dataclasses import dataclass, field
from enum import Enum

from torch import nn

from normlab.errors import require

NormBuilder = Callable[..., nn.Module]
BatchCheck = Callable[[dict, int], None]


class RunningStats(Enum):
    """What a norm keeps between batches, and so what the statistics callbacks can measure."""

    none = "none"  # nothing: train and eval compute the same function (gap exactly 0)
    ema = "ema"  # running_mean and running_var, an exponential moving average
    optional = "optional"  # an EMA when its option track_running_stats is true (InstanceNorm)


def per_batch(options: dict, batch_size: int) -> int | None:
    return batch_size


def per_sample(options: dict, batch_size: int) -> int | None:
    return 1


def no_statistics(options: dict, batch_size: int) -> int | None:
    return None


@dataclass(frozen=True)
class Column:
    """A norm option that studies sweep: a column of the report's tables (`header`), and
    figures of each (file, y column) against it along an axis labelled `axis` (large values
    on the left when `large_first`, as batch sizes in the GN paper's Figure 1)."""

    option: str
    header: str
    axis: str
    figures: tuple[tuple[str, str], ...] = ()
    large_first: bool = False


@dataclass(frozen=True)
class NormSpec:
    """Every fact about a norm, in one place: the rest of normlab reads these, never a name.

    - `builder(num_channels, spatial_size=None, **options)`: the layer; its keyword options,
      with their types and defaults, are the norm's config schema (`schema(name)`);
    - `title`: its name for readers (figure legends);
    - `batch_statistics`: its training statistics come from the batch (batch_size >= 2);
    - `syncs`: its statistics can span every device (its `sync` option; SyncBN);
    - `running_stats`: what it keeps between batches (RunningStats);
    - `norm_batch(options, batch_size)`: the samples one statistic spans on one device;
    - `batch_check(options, batch_size)`: refuses a batch the norm cannot use (ConfigError);
    - `option_rule(options)`: the options the builder gets from the configured ones;
    - `ranges`: option -> (holds, allowed), beside the shared OPTION_RANGES;
    - `columns`: its options that studies sweep (report columns and figures).
    """

    name: str
    builder: NormBuilder
    title: str = ""  # what a reader calls it: figure legends (BatchNorm, GroupNorm, ...)
    batch_statistics: bool = False
    syncs: bool = False
    running_stats: RunningStats = RunningStats.none
    norm_batch: Callable[[dict, int], int | None] = per_sample
    batch_check: BatchCheck | None = None
    option_rule: Callable[[dict], dict] | None = None
    ranges: dict[str, tuple[Callable[[typing.Any], bool], str]] = field(default_factory=dict)
    columns: tuple[Column, ...] = ()

    def __call__(self, num_channels: int, spatial_size=None, **options) -> nn.Module:
        return self.builder(num_channels, spatial_size, **options)

    def keeps_running_stats(self, options: dict) -> bool:
        if self.running_stats is RunningStats.optional:
            return bool(options.get("track_running_stats"))
        return self.running_stats is RunningStats.ema


NORMS: dict[str, NormSpec] = {}


def register(name: str, **facts) -> Callable[[NormBuilder], NormBuilder]:
    """Register a builder under `name` (lower case, as used on the command line: norm=<name>),
    with the facts of its NormSpec (batch_statistics, syncs, running_stats, norm_batch,
    batch_check, option_rule, ranges, columns). A norm with batch statistics spans the batch
    unless it says otherwise."""

    def decorate(builder: NormBuilder) -> NormBuilder:
        if name in NORMS:
            raise ValueError(f"norm {name!r} is already registered")
        if facts.get("batch_statistics") and "norm_batch" not in facts:
            facts["norm_batch"] = per_batch
        NORMS[name] = NormSpec(name, builder, **facts)
        return builder

    return decorate


def spec(name: str) -> NormSpec:
    check(name, {})
    return NORMS[name]


def batch_statistics_norms() -> list[str]:
    return sorted(n for n, s in NORMS.items() if s.batch_statistics)


def syncable_norms() -> list[str]:
    return sorted(n for n, s in NORMS.items() if s.syncs)


def report_columns() -> list[Column]:
    """Every registered norm's swept options, each once, in registration order."""
    seen: dict[str, Column] = {}
    for norm_spec in NORMS.values():
        for column in norm_spec.columns:
            seen.setdefault(column.option, column)
    return list(seen.values())


# Range rules shared by every norm that has the option: (holds, what is allowed).
OPTION_RANGES: dict[str, tuple[Callable[[typing.Any], bool], str]] = {
    "eps": (lambda v: v > 0, "a number > 0"),
    "momentum": (lambda v: v is None or 0 <= v <= 1, "a number in [0, 1], or null (cumulative)"),
    "num_groups": (lambda v: v is None or v >= 1, "an integer >= 1, or null"),
    "group_size": (lambda v: v is None or v >= 1, "an integer >= 1, or null"),
}


def check_ranges(ranges: dict, values: dict, prefix: str = "") -> None:
    """ConfigError (a ValueError) for the first of `values` outside its range in `ranges`."""
    for key, value in values.items():
        if key in ranges:
            holds, allowed = ranges[key]
            require(holds(value), f"{prefix}{key}", value, allowed)


def option_ranges(name: str) -> dict[str, tuple[Callable[[typing.Any], bool], str]]:
    return {**OPTION_RANGES, **NORMS[name].ranges}


def check_options(name: str, options: dict) -> None:
    """ConfigError for the first option of norm `name` outside its range."""
    check_ranges(option_ranges(name), options, "norm.")


def effective_options(name: str, options: dict) -> dict:
    """The options norm `name`'s builder gets from the configured ones (its option_rule)."""
    rule = NORMS[name].option_rule if name in NORMS else None
    return rule(dict(options)) if rule is not None else dict(options)


def check_batch(name: str, options: dict, batch_size: int) -> None:
    """ConfigError when norm `name` cannot normalize a batch of `batch_size` samples."""
    norm_spec = NORMS[name]
    independent = sorted(
        n for n, s in NORMS.items() if not s.batch_statistics and not s.batch_check
    )
    if norm_spec.batch_statistics:
        require(batch_size >= 2, "data.batch_size", batch_size,
                "an integer >= 2 (batch statistics need 2 samples), or a norm without batch "
                f"dependence: {', '.join(independent)}",
                f"with norm={name}")  # fmt: skip
    if norm_spec.batch_check is not None:
        norm_spec.batch_check(options, batch_size)


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
    params = inspect.signature(NORMS[name].builder).parameters.values()
    hints = typing.get_type_hints(NORMS[name].builder)
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
    params = inspect.signature(NORMS[name].builder).parameters.values()
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


@register("none", title="no norm", norm_batch=no_statistics)
def build_none(num_channels: int, spatial_size=None) -> nn.Module:
    """No normalization: the identity."""
    return nn.Identity()
