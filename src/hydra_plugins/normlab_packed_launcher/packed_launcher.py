"""hydra/launcher=packed: a sweep's jobs grouped into packs of runs that differ only in values,
each pack trained as one vectorized model (normlab.pack); every other job runs alone.

    python train.py -m hydra/launcher=packed experiment=bn_vs_gn_batch \\
        seed=0,1,2,3,4 'optim.base_lr=0.05,0.1,0.2'

Every job gets its own folder, as under Hydra's basic launcher (its .hydra/ written by Hydra's
own run_job). A job that cannot be packed is said in one line and run alone, through the same
task function as under the basic launcher; nothing is dropped.

The packs are planned here, where the sweep is launched, and trained where
hydra.launcher.executor says (normlab.sweep_dispatch): in this process (inprocess), as submitit
jobs on this machine (submitit_local, one per device with `devices`) or SLURM array tasks
(submitit_slurm), or Ray tasks (ray). Under the last three, jobs that run alone go there too.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from omegaconf import open_dict

from normlab.sweep_jobs import refuse

log = logging.getLogger(__name__)


@dataclass
class PackedLauncherConf:
    _target_: str = "hydra_plugins.normlab_packed_launcher.packed_launcher.PackedLauncher"
    max_members: Any = (
        None  # runs per pack at most; null: normlab.pack.grouping.default_max_members()
    )
    gpu_memory_gib: Any = None  # of the GPU a pack gets (max_members: null); null: this machine's
    executor: str = "inprocess"  # inprocess, submitit_local, submitit_slurm, ray
    array_parallelism: int = 2  # packs at once (submitit)
    devices: Any = None  # submitit_local: GPU indices, one pack on each at once
    timeout_min: int = 240
    max_num_timeout: int = 3  # requeues after a time-out (submitit), retries (Ray)
    gpus_per_pack: int = 0
    cpus_per_pack: int = 1
    mem_gb: Any = None
    partition: Any = None
    setup: list[str] = field(default_factory=list)
    address: Any = None  # Ray: a running cluster's; null: a local one


ConfigStore.instance().store(
    group="hydra/launcher", name="packed_schema", node=PackedLauncherConf, provider="normlab"
)


class PackedLauncher(Launcher):
    def __init__(self, max_members: int | None = None, gpu_memory_gib=None, **executor) -> None:
        self.max_members, self.gpu_memory_gib = max_members, gpu_memory_gib
        self.executor = dict(executor)
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def job_config(self, overrides, idx: int):
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        return config

    def run_alone(self, config) -> JobReturn:
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def prepared(self, config) -> tuple[JobReturn, Any]:
        """The job's folder and .hydra/ as Hydra's run_job makes them, and its task config and
        folder, without training."""
        seen = {}

        def collect(task_cfg):
            hydra = HydraConfig.get()
            seen.update(
                cfg=task_cfg,
                run_dir=Path(hydra.runtime.output_dir),
                overrides=list(hydra.overrides.task),
            )

        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=collect,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret, seen

    def launch(self, job_overrides, initial_job_idx: int):
        from normlab.config import ConfigError  # imports torch: only when launching
        from normlab.pack.grouping import default_max_members, plan_packs
        from normlab.sweep_dispatch import Executor, PackTask, run_packs

        limit = self.max_members
        if limit is not None and not (type(limit) is int and limit >= 1):  # true is no count
            refuse(f"hydra.launcher.max_members={limit}; allowed: an integer >= 1, or null "
                   "(16 on the CPU, one per 2 GiB of GPU memory up to 64)")  # fmt: skip
        try:
            options = {k: list(v) if k in ("devices", "setup") and v is not None else v
                       for k, v in self.executor.items()}  # fmt: skip
            executor = Executor(**{"name": options.pop("executor", "inprocess"), **options})
        except ConfigError as error:
            refuse(str(error))
        if limit is None and self.gpu_memory_gib is not None:
            limit = default_max_members(float(self.gpu_memory_gib))
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()  # workers elsewhere
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Launching %d jobs, packed where they can be", len(job_overrides))
        configs = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            configs.append(self.job_config(overrides, idx))
        returns: list[JobReturn | None] = [None] * len(configs)
        prepared = {}
        for i, config in enumerate(configs):
            prepared[i] = self.prepared(config)
        packs, alone = plan_packs({i: seen for i, (_, seen) in prepared.items()}, limit)
        for i, reason in alone.items():
            log.info("job #%d runs alone: %s", initial_job_idx + i, reason)
            if executor.name == "inprocess":
                returns[i] = self.run_alone(configs[i])
            else:  # there, as a pack of one: its own run, in its own folder
                packs.append([i])
        root = sweep_dir / ".packs"
        tasks = [PackTask([prepared[i][1] for i in pack], root, executor.name) for pack in packs]
        try:
            results = run_packs(tasks, executor, sweep_dir)
        except ConfigError as error:  # the executor cannot run them (Ray without its GPUs)
            refuse(str(error))
        for pack, values in zip(packs, results, strict=True):
            for i, value in zip(pack, values, strict=True):
                ret = prepared[i][0]
                ret.status, ret.return_value = JobStatus.COMPLETED, value
                returns[i] = ret
        return returns
