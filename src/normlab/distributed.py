"""What a multi-device run computes: its SGD batch, its normalization batch, and SyncBN.

Under DDP each of the `world_size` processes takes `data.batch_size` images a step, so the SGD
batch is data.batch_size × world_size and the linear lr rule scales with that. BatchNorm's
statistics are per device (the GN paper's setting) unless `norm.sync=true` (or
`trainer.sync_batchnorm=true`, which sets it), when they span the SGD batch.
"""

from omegaconf import DictConfig

from normlab.config import BATCH_DEPENDENT, ConfigError, norm_options

SYNCABLE = tuple(sorted(BATCH_DEPENDENT))  # batch statistics: what can span all ranks


def synced(cfg: DictConfig) -> bool:
    name, options = norm_options(cfg)
    return bool(options.get("sync")) or bool(cfg.trainer.get("sync_batchnorm"))


def batch_sizes(cfg: DictConfig, world_size: int) -> dict:
    """The run's batches: per device, SGD (all devices), and the normalization batch (the
    samples one statistic is taken over: per device, all devices when synced, the virtual batch
    for ghost_batch, 1 for per-sample norms, None without a norm)."""
    name, options = norm_options(cfg)
    batch = cfg.data.batch_size
    if name in SYNCABLE:
        norm_batch = batch * world_size if synced(cfg) else batch
    elif name == "ghost_batch":
        norm_batch = options["virtual_batch_size"]
    else:
        norm_batch = None if name == "none" else 1
    return {
        "devices": world_size,
        "sgd_batch_size": batch * world_size,
        "norm_batch_size": norm_batch,
    }


def check_sync_batchnorm(cfg: DictConfig) -> None:
    """trainer.sync_batchnorm=true is refused where it would do nothing (Lightning converts
    only torch.nn's BatchNorm classes; normlab's are synced through norm.sync)."""
    name, _ = norm_options(cfg)
    if cfg.trainer.get("sync_batchnorm") and name not in SYNCABLE:
        raise ConfigError(
            f"trainer.sync_batchnorm=true with norm={name}: only {', '.join(SYNCABLE)} have "
            "batch statistics to synchronize across devices"
        )


def enable_sync(model) -> None:
    """Turns on synced statistics in every layer that has them."""
    for layer in model.modules():
        if hasattr(layer, "sync_batch_stats"):
            layer.sync_batch_stats = True
