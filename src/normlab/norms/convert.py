"""Swap the normalization layers of any network for normlab's, as torch's
SyncBatchNorm.convert_sync_batchnorm swaps BatchNorm: `convert(model, "group", num_groups=8)`.

What is converted: every layer that normalizes the channels of an (N, C, H, W) feature map:
torch.nn's BatchNorm2d, SyncBatchNorm, GroupNorm and InstanceNorm2d, timm's LayerNorm2d and
BatchNormAct2d (by class name: timm is optional), and normlab's own. Left, with the reason: 1-d
and 3-d layers (normlab's norms take 4-d input) and torch.nn.LayerNorm, which normalizes the
last dimension (a transformer's tokens), not channels.

Each new layer has the old one's channels, eps and momentum (unless `options` set them, or the
target has no such option), its device, dtype and train/eval mode. When the target is the
same kind (BatchNorm -> batch, GroupNorm of the same group count -> group, ...), γ, β, the
running statistics and num_batches_tracked are carried over, so the network computes the
same function. A norm whose parameters cover space (`layer` with elementwise affine) needs
each layer's (H, W): pass `example_input`, and convert runs it once, recording the sizes.
"""

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from normlab.norms.base import RunningStatsNorm
from normlab.norms.batch import BatchNorm2d as OwnBatchNorm2d
from normlab.norms.group import GroupNorm as OwnGroupNorm
from normlab.norms.instance import InstanceNorm2d as OwnInstanceNorm2d
from normlab.norms.layer import LayerNorm as OwnLayerNorm
from normlab.norms.registry import build, schema, spec

CHANNEL_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm2d,
                 RunningStatsNorm, OwnGroupNorm, OwnLayerNorm)  # fmt: skip
TIMM_CHANNEL_NORMS = {"LayerNorm2d", "BatchNormAct2d", "GroupNormAct", "GroupNorm1"}
LEFT = {
    nn.BatchNorm1d: "1-d input: normlab's norms take (N, C, H, W)",
    nn.BatchNorm3d: "3-d input: normlab's norms take (N, C, H, W)",
    nn.InstanceNorm1d: "1-d input: normlab's norms take (N, C, H, W)",
    nn.InstanceNorm3d: "3-d input: normlab's norms take (N, C, H, W)",
    nn.LayerNorm: "normalizes the last dimension (tokens), not the channels of a feature map",
}


@dataclass
class Conversion:
    """What convert() did: `swapped` (path, old class, new class), `left` (path, class, why)."""

    swapped: list[tuple[str, str, str]] = field(default_factory=list)
    left: list[tuple[str, str, str]] = field(default_factory=list)

    def left_counts(self) -> dict[str, int]:
        """How many layers of each class were left."""
        return dict(Counter(kind for _, kind, _ in self.left))

    def __str__(self) -> str:
        lines = [f"{len(self.swapped)} swapped, {len(self.left)} left"]
        lines += [f"  left {path} ({kind}): {why}" for path, kind, why in self.left]
        return "\n".join(lines)


def kind_of(layer: nn.Module) -> str | None:
    """The normlab name of the function `layer` computes, when it has a twin."""
    if isinstance(layer, OwnBatchNorm2d) and type(layer).__name__ == "BatchNorm2d":
        return "batch"
    if isinstance(layer, nn.BatchNorm2d | nn.SyncBatchNorm) and not hasattr(layer, "act"):
        return "batch"
    if isinstance(layer, nn.GroupNorm | OwnGroupNorm):
        return "group"
    if isinstance(layer, nn.InstanceNorm2d | OwnInstanceNorm2d):
        return "instance"
    return None


def channels_of(layer: nn.Module) -> int:
    for attribute in ("num_features", "num_channels"):
        if isinstance(getattr(layer, attribute, None), int):
            return getattr(layer, attribute)
    return int(layer.normalized_shape[0])  # LayerNorm2d: over C


def left_reason(layer: nn.Module) -> str | None:
    """Why `layer` is left (subclasses included, e.g. timm's LayerNorm), or None."""
    return next((why for kind, why in LEFT.items() if isinstance(layer, kind)), None)


def is_channel_norm(layer: nn.Module) -> bool:
    if type(layer).__name__ in TIMM_CHANNEL_NORMS:
        return True
    if left_reason(layer) is not None:
        return False
    return isinstance(layer, CHANNEL_NORMS)


KEPT = ("eps", "momentum", "affine", "track_running_stats")


def kept_options(layer: nn.Module, name: str, options: dict) -> dict:
    """eps, momentum, affine and track_running_stats from `layer` where the target takes them
    (with the same type) and `options` do not say; a GroupNorm's group count, to group."""
    defaults = {f.name: f.default for f in dataclasses.fields(schema(name))}
    kept = {}
    for key in KEPT:
        value = getattr(layer, key, None)
        same_type = isinstance(value, type(defaults.get(key))) or (
            key == "momentum" and value is None
        )
        if key in defaults and hasattr(layer, key) and same_type:
            kept[key] = value
    untold = "num_groups" not in options and "group_size" not in options
    if kind_of(layer) == "group" and name == "group" and untold:
        kept["num_groups"] = layer.num_groups
    return {**kept, **options}


def spatial_sizes(model: nn.Module, paths: list[str], example_input) -> dict[str, tuple]:
    """Each layer's input (H, W), from one forward pass of `example_input` (no grad, eval)."""
    sizes, handles = {}, []
    modules = dict(model.named_modules())
    for path in paths:

        def record(layer, args, path=path):
            sizes[path] = tuple(args[0].shape[-2:])

        handles.append(modules[path].register_forward_pre_hook(record))
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(example_input)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return sizes


def same_function(old: nn.Module, new: nn.Module, name: str) -> bool:
    if kind_of(old) != name:
        return False
    if name == "group":
        return old.num_groups == new.num_groups
    return True


def carry_state(old: nn.Module, new: nn.Module) -> None:
    """γ, β and running statistics of `old` into `new` (same names, same shapes)."""
    theirs = old.state_dict()
    ours = new.state_dict()
    with torch.no_grad():
        for key, value in ours.items():
            if key in theirs and theirs[key].shape == value.shape:
                value.copy_(theirs[key])


def channel_norm_paths(model: nn.Module, record: Conversion) -> list[str]:
    """The paths of `model`'s channel norms; the norm layers it leaves go into `record`."""
    targets = []
    for path, layer in model.named_modules():
        if path and is_channel_norm(layer):
            targets.append(path)
        elif path and left_reason(layer) is not None:
            record.left.append((path, type(layer).__name__, left_reason(layer)))
    return targets


def replace_norms(
    model: nn.Module,
    make: Callable[[nn.Module, tuple | None], nn.Module],
    example_input: torch.Tensor | None = None,
    carry: Callable[[nn.Module, nn.Module], bool] = lambda old, new: False,
) -> Conversion:
    """Every channel norm `old` of `model` replaced, in place, by `make(old, (H, W) or None)`
    (sizes from one forward of `example_input`), on its device, dtype and mode; its state
    carried over where `carry(old, new)`. All or nothing: every replacement is built before the
    first swap, so when `make` raises, `model` is as it was."""
    record = Conversion()
    targets = channel_norm_paths(model, record)
    sizes = spatial_sizes(model, targets, example_input) if example_input is not None else {}
    modules = dict(model.named_modules())
    replacements = [(path, replacement(modules[path], sizes.get(path), make, carry))
                    for path in targets]  # fmt: skip
    for path, new in replacements:
        old = modules[path]
        parent_path, _, child = path.rpartition(".")
        setattr(modules[parent_path] if parent_path else model, child, new)
        record.swapped.append((path, type(old).__name__, type(new).__name__))
    return record


def replacement(old: nn.Module, size, make, carry) -> nn.Module:
    """`make(old, size)` on old's device, dtype and mode, with old's state where `carry` says;
    `old` itself is not changed."""
    new = make(old, size)
    tensors = [*old.parameters(), *(b for b in old.buffers() if b.is_floating_point())]
    if tensors:
        new = new.to(device=tensors[0].device, dtype=tensors[0].dtype)
    if carry(old, new):
        carry_state(old, new)
    new.train(old.training)
    if hasattr(old, "act") and isinstance(old.act, nn.Module):  # timm's norm+act layers
        new = nn.Sequential(new, old.act)
    return new


def convert(
    model: nn.Module, name: str, example_input: torch.Tensor | None = None, **options
) -> tuple[nn.Module, Conversion]:
    """`model` with every channel norm swapped for normlab's `name` (in place; returned), and
    the record of what was swapped and what was left, and why. See the module docstring."""
    spec(name)  # an unknown norm name fails here, naming the valid ones
    needs_space = name == "layer" and options.get("affine", "elementwise") == "elementwise"
    if needs_space and example_input is None:
        raise ValueError(f"convert(..., {name!r}) needs each layer's (H, W): pass example_input")

    def make(old: nn.Module, size) -> nn.Module:
        return build(name, channels_of(old), size, **kept_options(old, name, options))

    def carry(old: nn.Module, new: nn.Module) -> bool:
        return same_function(old, new, name)

    return model, replace_norms(model, make, example_input, carry)


__all__ = ["Conversion", "convert"]
