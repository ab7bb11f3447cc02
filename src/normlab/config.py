"""From the Hydra config to what normlab's builders take; the run-name resolver."""

import hashlib
import re

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config that cannot run; the message names the key, the value and what is allowed."""


MAX_RUN_NAME = 80  # characters: what TensorBoard's sidebar and legends show whole


def run_name_order(item: str) -> tuple[int, str]:
    """norm (and its options) first, then the batch size, then the rest in Hydra's order."""
    key = item.split("=", 1)[0].lstrip("+~")
    if key == "norm" or key.startswith("norm."):
        return (0 if key == "norm" else 1), key
    return (2 if key == "data.batch_size" else 3), ""


def run_name(override_dirname: str, max_length: int = MAX_RUN_NAME) -> str:
    """A run is named by its overrides, norm first, then the batch size, then the rest
    (norm=group,data.batch_size=8,seed=1); plain runs: 'defaults'. Past `max_length`
    characters the name is cut at an override boundary and ends in a hash of the whole, so it
    stays unique; the full overrides are in the run's .hydra/overrides.yaml and metrics.json."""
    items = re.split(r",(?=[^,=]+=)", override_dirname) if override_dirname else []
    name = ",".join(sorted(items, key=run_name_order)) or "defaults"
    if len(name) <= max_length:
        return name
    digest = "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    kept = name[: max_length - len(digest)]
    if "," in kept:
        kept = kept[: kept.rindex(",")]
    return kept + digest


OmegaConf.register_new_resolver("run_name", run_name, replace=True)

GIB_PER_PACKED_RUN = 8  # GPU memory set aside per packed run (a CIFAR ResNet at batch 512: ~3 GiB)


def parallel_jobs() -> int:
    """The parallel launcher's default n_jobs. On a GPU, small-batch runs are bound by the host
    launching kernels, not by the GPU, so runs are packed onto it: one per two CPU cores, at
    most one per GIB_PER_PACKED_RUN GiB of GPU memory, at most 8. On the CPU: 2."""
    import os

    import torch

    if not torch.cuda.is_available():
        return 2
    memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 2) // 2, int(memory_gib // GIB_PER_PACKED_RUN)))


OmegaConf.register_new_resolver("parallel_jobs", parallel_jobs, replace=True)


def plain(node) -> dict:
    return (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )


def norm_options(cfg: DictConfig) -> tuple[str, dict]:
    """(name, options) for normlab.norms.norm_factory; group_size, when set, replaces num_groups."""
    options = plain(cfg.norm)
    name = options.pop("name")
    if name == "group" and options.get("group_size") is not None:
        options["num_groups"] = None
    return name, options


def model_options(cfg: DictConfig) -> tuple[str, dict]:
    """(name, options) for normlab.models.build_model; keys the model does not take are dropped."""
    options = plain(cfg.model)
    name = options.pop("name")
    options.pop("num_groups_default", None)
    return name, options


def learning_rate(cfg: DictConfig, world_size: int = 1) -> float:
    """base_lr, scaled linearly with the SGD batch (data.batch_size on each of `world_size`
    devices) when optim.lr_scaling=linear (GN paper)."""
    o = cfg.optim
    if o.lr_scaling == "linear":
        return o.base_lr * cfg.data.batch_size * world_size / o.base_batch_size
    if o.lr_scaling == "none":
        return o.base_lr
    raise ConfigError(f"optim.lr_scaling={o.lr_scaling!r}; allowed: linear, none")


BATCH_DEPENDENT = {"batch", "batch_renorm"}  # norms whose training statistics come from the batch


def validate(cfg: DictConfig) -> None:
    """Refuse a config that cannot train, before any data is read: one ConfigError, one line."""
    name, options = norm_options(cfg)
    if "eps" in options and not options["eps"] > 0:
        raise ConfigError(f"norm.eps={options['eps']} must be > 0")
    momentum = options.get("momentum")
    if momentum is not None and not 0 <= momentum <= 1:
        raise ConfigError(
            f"norm.momentum={momentum} must be in [0, 1] (or null for a cumulative average)"
        )
    batch = cfg.data.batch_size
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"data.batch_size={batch} must be a positive integer")
    if batch < 2 and name in BATCH_DEPENDENT:
        raise ConfigError(
            f"data.batch_size={batch} with norm={name}: batch statistics need at least 2 "
            "samples per batch; use data.batch_size>=2 or a norm without batch dependence "
            "(group, layer, instance)"
        )
    setting = cfg.get("compile", "auto")
    if not (setting == "auto" or isinstance(setting, bool)):
        raise ConfigError(f"compile={cfg.compile!r}; allowed: auto, true, false")
    if name == "ghost_batch":
        virtual = options.get("virtual_batch_size")
        divisors = [d for d in range(2, batch + 1) if batch % d == 0]
        if not isinstance(virtual, int) or virtual not in divisors:
            raise ConfigError(
                f"norm.virtual_batch_size={virtual} with data.batch_size={batch}: the virtual "
                f"batch must be >= 2 and divide the batch; valid: {divisors}"
            )
    seed = cfg.get("seed")
    if not (isinstance(seed, int) and 0 <= seed < 2**32):
        raise ConfigError(f"seed={seed} must be an integer in [0, 2**32 - 1]")
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs != -1 and not (isinstance(epochs, int) and epochs >= 1):
        raise ConfigError(f"trainer.max_epochs={epochs} must be a positive integer (or -1)")


def key_choices(cfg: DictConfig, world_size: int = 1) -> dict:
    """The settings that tell runs apart, flat, for metrics.json and the logger's hparams; with
    the batches a run on `world_size` devices computes (normlab.distributed.batch_sizes)."""
    from normlab.distributed import batch_sizes

    name, options = norm_options(cfg)
    choices = {"norm": name}
    choices.update({f"norm.{k}": v for k, v in options.items()})
    choices.update(
        {
            "model": cfg.model.name,
            "dataset": cfg.data.name,
            "batch_size": cfg.data.batch_size,
            **batch_sizes(cfg, world_size),
            "lr": learning_rate(cfg, world_size),
            "seed": cfg.seed,
        }
    )
    return choices
