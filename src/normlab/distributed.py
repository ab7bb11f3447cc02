"""What a multi-device run computes: its SGD batch, its normalization batch, and SyncBN.

Under DDP each of the `world_size` processes takes `data.batch_size` images a step, so the SGD
batch is data.batch_size × world_size and the linear lr rule scales with that. BatchNorm's
statistics are per device (the GN paper's setting) unless `norm.sync=true` (or
`trainer.sync_batchnorm=true`, which sets it), when they span the SGD batch.
"""

from normlab.errors import require
from normlab.norms.registry import BATCH_DEPENDENT

SYNCABLE = tuple(sorted(BATCH_DEPENDENT))  # batch statistics: what can span all ranks


def synced(settings) -> bool:
    return bool(settings.norm_options.get("sync")) or settings.trainer.sync_batchnorm


def batch_sizes(settings, world_size: int) -> dict:
    """The run's batches: per device, SGD (all devices), and the normalization batch (the
    samples one statistic is taken over: per device, all devices when synced, the virtual batch
    for ghost_batch, 1 for per-sample norms, None without a norm)."""
    name, options, batch = settings.norm_name, settings.norm_options, settings.data.batch_size
    if name in SYNCABLE:
        norm_batch = batch * world_size if synced(settings) else batch
    elif name == "ghost_batch":
        norm_batch = options["virtual_batch_size"]
    else:
        norm_batch = None if name == "none" else 1
    return {
        "devices": world_size,
        "sgd_batch_size": batch * world_size,
        "norm_batch_size": norm_batch,
    }


def check_sync_batchnorm(settings) -> None:
    """trainer.sync_batchnorm=true is refused where it would do nothing (Lightning converts
    only torch.nn's BatchNorm classes; normlab's are synced through norm.sync)."""
    name = settings.norm_name
    require(not settings.trainer.sync_batchnorm or name in SYNCABLE, "trainer.sync_batchnorm",
            "true", f"false, or a norm with batch statistics to synchronize across devices: "
            f"{', '.join(SYNCABLE)}", f"with norm={name}")  # fmt: skip


def enable_sync(model) -> None:
    """Turns on synced statistics in every layer that has them."""
    for layer in model.modules():
        if hasattr(layer, "sync_batch_stats"):
            layer.sync_batch_stats = True
