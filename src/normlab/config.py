"""The typed config: every group's schema, registered with Hydra's ConfigStore, and
load_settings(cfg), which turns the composed config, once, into the validated Settings that the
rest of normlab reads. Also the run-name and parallel-jobs resolvers."""

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from normlab.callbacks.settings import CallbacksSettings
from normlab.data.datamodule import DataSettings
from normlab.distributed import batch_sizes, check_sync_batchnorm
from normlab.errors import ConfigError, require
from normlab.log_interval import log_interval
from normlab.models import CnnSettings, ExternalModelSettings, ResNetSettings
from normlab.norms import registry as norm_registry
from normlab.optim import OptimSettings

MAX_RUN_NAME = 80  # bytes: what TensorBoard's sidebar and legends show whole


def run_name_order(item: str) -> tuple[int, str]:
    """norm (its options, or the remedy that sets it) first, then the batch size, then the rest
    in Hydra's order."""
    key = override_key(item)
    if key in ("norm", "remedy") or key.startswith("norm."):
        return (0 if key in ("norm", "remedy") else 1), key
    return (2 if key == "data.batch_size" else 3), ""


def override_key(item: str) -> str:
    return item.split("=", 1)[0].lstrip("+~")


def swept_keys(sweep_dir: str | None) -> set[str] | None:
    """The keys a sweep varies (comma lists, ranges, choice() in its command line or in its
    sweeper's params), read from the multirun.yaml Hydra writes into the sweep folder before it
    launches a job; None outside a sweep."""
    path = Path(sweep_dir) / "multirun.yaml" if sweep_dir else None
    if path is None or not path.is_file():
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    master = OmegaConf.load(path).hydra
    params = master.sweeper.get("params") or {}
    texts = [*master.overrides.task, *(f"{k}={v}" for k, v in params.items())]
    parsed = OverridesParser.create().parse_overrides(texts)
    return {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}


def path_safe(name: str) -> str:
    """`name` as one folder name: '/' and '..' percent-encoded, so no value nests folders or
    climbs out of the output root."""
    return name.replace("%", "%25").replace("/", "%2F").replace("..", ".%2E")


def run_name(
    override_dirname: str, sweep_dir: str | None = None, max_length: int = MAX_RUN_NAME
) -> str:
    """A run is named by its overrides, norm first, then the batch size, then the rest
    (norm=group,data.batch_size=8,seed=1); in a sweep (`sweep_dir`), by the overrides the sweep
    varies only; plain runs: 'defaults'. '/' and '..' in a value are percent-encoded
    (path_safe). Past `max_length` bytes (UTF-8: what a file system limits) the name is cut at
    an override boundary and ends in a hash of the whole, so it stays unique; the full
    overrides are in the run's .hydra/overrides.yaml and metrics.json."""
    items = re.split(r",(?=[^,=]+=)", override_dirname) if override_dirname else []
    varied = swept_keys(sweep_dir)
    if varied:
        items = [item for item in items if override_key(item) in varied]
    name = path_safe(",".join(sorted(items, key=run_name_order)) or "defaults")
    if len(name.encode()) <= max_length:
        return name
    digest = "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    kept = name.encode()[: max_length - len(digest)].decode(errors="ignore")
    if "," in kept:
        kept = kept[: kept.rindex(",")]
    return kept + digest


OmegaConf.register_new_resolver("run_name", run_name, replace=True)

# GPU memory set aside per run of the parallel launcher (a CIFAR ResNet at batch 512: ~3 GiB)
GIB_PER_PARALLEL_RUN = 8


def parallel_jobs() -> int:
    """The parallel launcher's default n_jobs. On a GPU, small-batch runs are bound by the host
    launching kernels, not by the GPU, so several run on it side by side: one per two CPU cores,
    at most one per GIB_PER_PARALLEL_RUN GiB of GPU memory, at most 8. On the CPU: 2."""
    if not torch.cuda.is_available():
        return 2
    memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 2) // 2, int(memory_gib // GIB_PER_PARALLEL_RUN)))


OmegaConf.register_new_resolver("parallel_jobs", parallel_jobs, replace=True)


# What trainer.precision and trainer.accelerator may be (Lightning's own names).
PRECISIONS = (
    *("auto", "32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true"),
    *("64-true", "64", "transformer-engine", "transformer-engine-float16"),
)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


@dataclass
class TrainerSettings:
    """pytorch_lightning.Trainer arguments (Hydra group `trainer`), passed as they are, but
    precision `auto` (bf16-mixed on a GPU, 32-true on the CPU) and sync_batchnorm (normlab's:
    normlab.distributed)."""

    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: Any = "auto"
    num_nodes: int = 1
    precision: Any = "auto"
    max_epochs: int | None = 30
    max_steps: int = -1
    deterministic: Any = False
    benchmark: bool | None = None
    log_every_n_steps: int | None = None  # null: about 20 points an epoch, at most every 50 steps
    num_sanity_val_steps: int = 2
    enable_progress_bar: bool | None = None  # null: on in a single run; in a sweep, off
    enable_model_summary: bool = False
    limit_train_batches: Any = None  # int: batches, float: fraction (Lightning's rule)
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    check_val_every_n_epoch: int | None = 1
    gradient_clip_val: float | None = None
    sync_batchnorm: bool = False

    def __post_init__(self):
        epochs, steps = self.max_epochs, self.max_steps
        require(epochs is None or epochs == -1 or epochs >= 1, "trainer.max_epochs", epochs,
                "an integer >= 1, or -1 (no limit)")  # fmt: skip
        require(steps == -1 or steps >= 1, "trainer.max_steps", steps,
                "an integer >= 1, or -1 (no limit)")  # fmt: skip
        require(
            steps >= 1 or epochs not in (None, -1),
            "trainer.max_epochs",
            epochs,
            "an integer >= 1 when trainer.max_steps is -1 (the lr schedule needs an end)",
        )
        require(str(self.precision) in PRECISIONS, "trainer.precision", self.precision,
                ", ".join(PRECISIONS))  # fmt: skip
        require(self.accelerator in ACCELERATORS, "trainer.accelerator", self.accelerator,
                ", ".join(ACCELERATORS))  # fmt: skip
        devices = self.devices
        require(devices in ("auto", -1) or (isinstance(devices, int) and devices >= 1)
                or (isinstance(devices, str) and devices.isdigit() and int(devices) >= 1)
                or (isinstance(devices, list | tuple) and len(devices) >= 1),
                "trainer.devices", devices,
                "auto, -1 (all), an integer >= 1, or a list of device indices")  # fmt: skip
        require(self.num_nodes >= 1, "trainer.num_nodes", self.num_nodes, "an integer >= 1")
        for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            limit = getattr(self, key)
            require(limit is None or (isinstance(limit, int) and limit >= 1)
                    or (isinstance(limit, float) and 0 < limit <= 1), f"trainer.{key}", limit,
                    "an integer >= 1 (batches), a fraction in (0, 1], or null (all)")  # fmt: skip
        every = self.check_val_every_n_epoch
        require(every is None or every >= 1, "trainer.check_val_every_n_epoch", every,
                "an integer >= 1, or null")  # fmt: skip
        every, auto = self.log_every_n_steps, "about 20 points an epoch, at most every 50 steps"
        require(every is None or every >= 1, "trainer.log_every_n_steps", every,
                f"an integer >= 1, or null ({auto})")  # fmt: skip
        require(self.num_sanity_val_steps >= -1, "trainer.num_sanity_val_steps",
                self.num_sanity_val_steps, "an integer >= 0, or -1 (every batch)")  # fmt: skip
        clip = self.gradient_clip_val
        require(clip is None or clip >= 0, "trainer.gradient_clip_val", clip,
                "a number >= 0, or null (no clipping)")  # fmt: skip
        require(self.deterministic in (True, False, "warn"), "trainer.deterministic",
                self.deterministic, "true, false, warn")  # fmt: skip

    def require_available(self) -> None:
        """ConfigError when the accelerator asked for is not on this machine."""
        require(self.accelerator not in ("gpu", "cuda") or torch.cuda.is_available(),
                "trainer.accelerator", self.accelerator,
                "auto or cpu: no CUDA GPU is visible to torch here")  # fmt: skip

    def logging_interval(self, steps_per_epoch: int) -> int:
        """log_every_n_steps, or with null: about 20 points an epoch, at most every 50 steps."""
        return log_interval(self.log_every_n_steps, steps_per_epoch)

    def lightning_options(self) -> dict:
        options = dataclasses.asdict(self)
        del options["sync_batchnorm"]
        if options["precision"] == "auto":
            gpu = torch.cuda.is_available() and self.accelerator in ("auto", "gpu", "cuda")
            options["precision"] = "bf16-mixed" if gpu else "32-true"
        return options


@dataclass
class LoggerSettings:
    """TensorBoardLogger arguments (Hydra group `logger`)."""

    default_hp_metric: bool = False
    log_graph: bool = False


@dataclass
class PathsSettings:
    root: str = "outputs"  # runs/ and multirun/ land here
    data: str = "data"  # where datasets are looked for and downloaded


@dataclass
class Settings:
    """One run's settings, typed and checked (Hydra's primary config `train`)."""

    norm: Any = MISSING  # the norm's own schema: normlab.norms.registry.schema(name)
    model: Any = MISSING  # CnnSettings, ResNetSettings or ExternalModelSettings
    data: DataSettings = field(default_factory=DataSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    callbacks: CallbacksSettings = field(default_factory=CallbacksSettings)
    logger: LoggerSettings = field(default_factory=LoggerSettings)
    paths: PathsSettings = field(default_factory=PathsSettings)
    seed: int = 0
    ckpt_path: str | None = None  # resume from this checkpoint
    compile: Any = "auto"  # auto | true | false

    def __post_init__(self):
        require(self.compile == "auto" or isinstance(self.compile, bool), "compile",
                self.compile, "auto, true, false")  # fmt: skip
        require(0 <= self.seed < 2**32, "seed", self.seed, "an integer in [0, 2**32 - 1]")
        norm_registry.check_batch(self.norm_name, self.norm_options, self.data.batch_size)
        check_sync_batchnorm(self)

    @property
    def norm_name(self) -> str:
        return self.norm.name

    @property
    def norm_options(self) -> dict:
        """The options norm_factory(norm_name, ...) takes (a group_size replaces num_groups)."""
        options = dataclasses.asdict(self.norm)
        del options["name"]
        if self.trainer.sync_batchnorm:  # refused unless the norm syncs (check_sync_batchnorm)
            options["sync"] = True
        return norm_registry.effective_options(self.norm.name, options)

    def learning_rate(self, world_size: int = 1) -> float:
        """optim's lr for the SGD batch: data.batch_size on each of `world_size` devices."""
        return self.optim.learning_rate(self.data.batch_size * world_size)

    def key_choices(self, world_size: int = 1) -> dict:
        """The settings that tell runs apart, flat, for metrics.json and the HPARAMS record;
        with the batches a run on `world_size` devices computes."""
        choices = {"norm": self.norm_name}
        choices.update({f"norm.{k}": plain_value(v) for k, v in self.norm_options.items()})
        choices.update(
            {
                "model": self.model.name,
                "dataset": self.data.name,
                "batch_size": self.data.batch_size,
                **batch_sizes(self, world_size),
                "lr": self.learning_rate(world_size),
                "seed": self.seed,
            }
        )
        return choices


def plain_value(value):
    """An Enum as its value (for JSON and TensorBoard); anything else as it is."""
    return getattr(value, "value", value)


def load_settings(cfg: DictConfig) -> Settings:
    """The composed config as validated Settings: ConfigError (one line) for a value normlab
    refuses. Hydra itself has already refused wrong types and unknown keys or choices."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(Settings), cfg)
        return OmegaConf.to_object(typed)
    except ConfigError:
        raise
    except ValueError as error:  # a range the norm, model or data refuses, or OmegaConf's check
        raise ConfigError(str(error).splitlines()[0]) from None


def register_schemas() -> None:
    """Every group's schema in Hydra's ConfigStore: `normlab` (the primary config's, named
    first in conf/train.yaml's defaults), norm/<name>_schema, model/{cnn,resnet}_schema."""
    store = ConfigStore.instance()
    store.store(name="normlab", node=Settings)
    for name in norm_registry.NORMS:
        store.store(group="norm", name=f"{name}_schema", node=norm_registry.schema(name))
    store.store(group="model", name="cnn_schema", node=CnnSettings)
    store.store(group="model", name="resnet_schema", node=ResNetSettings)
    store.store(group="model", name="external_schema", node=ExternalModelSettings)


register_schemas()
