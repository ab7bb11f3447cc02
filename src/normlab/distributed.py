"""What a multi-device run computes: its SGD batch, its normalization batch, and SyncBN.

Under DDP each of the `world_size` processes takes `data.batch_size` images a step, so the SGD
batch is data.batch_size × world_size and the linear lr rule scales with that. BatchNorm's
statistics are per device (the GN paper's setting) unless `norm.sync=true` (or
`trainer.sync_batchnorm=true`, which sets it: Settings.norm_options), when they span the SGD
batch. Which norms can sync, and over what one statistic is taken, are their NormSpec's facts.
"""

from normlab.errors import require
from normlab.norms.registry import spec, syncable_norms


def synced(settings) -> bool:
    return bool(settings.norm_options.get("sync"))


def batch_sizes(settings, world_size: int) -> dict:
    """The run's batches: per device, SGD (all devices), and the normalization batch (the
    samples one statistic is taken over: per device, all devices when synced, the virtual batch
    for ghost_batch, 1 for per-sample norms, None without a norm)."""
    norm, options, batch = spec(settings.norm_name), settings.norm_options, settings.data.batch_size
    norm_batch = norm.norm_batch(options, batch)
    if norm.syncs and synced(settings):
        norm_batch = batch * world_size
    return {
        "devices": world_size,
        "sgd_batch_size": batch * world_size,
        "norm_batch_size": norm_batch,
    }


def check_sync_batchnorm(settings) -> None:
    """trainer.sync_batchnorm=true is refused where it would do nothing (Lightning converts
    only torch.nn's BatchNorm classes; normlab's are synced through norm.sync)."""
    name, syncable = settings.norm_name, syncable_norms()
    require(not settings.trainer.sync_batchnorm or name in syncable, "trainer.sync_batchnorm",
            "true", f"false, or a norm with batch statistics to synchronize across devices: "
            f"{', '.join(syncable)}", f"with norm={name}")  # fmt: skip
