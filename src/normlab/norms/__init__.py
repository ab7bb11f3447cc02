"""normlab's own norm layers, each the same function as its torch.nn twin, and their factory.

>>> from normlab.norms import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm, build
>>> norm = build("group", 64, num_groups=32)
"""

from normlab.norms.base import RunningStatsNorm
from normlab.norms.batch import BatchNorm1d, BatchNorm2d
from normlab.norms.batch_renorm import BatchRenorm2d
from normlab.norms.convert import Conversion, convert
from normlab.norms.frn import FilterResponseNorm2d
from normlab.norms.ghost_batch import GhostBatchNorm2d
from normlab.norms.group import GroupNorm
from normlab.norms.instance import InstanceNorm2d
from normlab.norms.layer import LayerNorm
from normlab.norms.registry import NORMS, build, norm_factory, options_of, register

__all__ = [
    "NORMS",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchRenorm2d",
    "Conversion",
    "FilterResponseNorm2d",
    "GhostBatchNorm2d",
    "GroupNorm",
    "InstanceNorm2d",
    "LayerNorm",
    "RunningStatsNorm",
    "build",
    "convert",
    "norm_factory",
    "options_of",
    "register",
]
