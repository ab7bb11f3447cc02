"""hydra/launcher=packed: a sweep's jobs grouped into packs of runs that differ only in values,
each pack trained as one vectorized model (normlab.pack); every other job runs alone.

    python train.py -m hydra/launcher=packed experiment=bn_vs_gn_batch \\
        seed=0,1,2,3,4 'optim.base_lr=0.05,0.1,0.2'

Every job gets its own folder, as under Hydra's basic launcher (its .hydra/ written by Hydra's
own run_job). A job that cannot be packed is said in one line and run alone, through the same
task function as under the basic launcher; nothing is dropped.
"""

import logging
from dataclasses import dataclass
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


ConfigStore.instance().store(
    group="hydra/launcher", name="packed_schema", node=PackedLauncherConf, provider="normlab"
)


class PackedLauncher(Launcher):
    def __init__(self, max_members: int | None = None) -> None:
        self.max_members = max_members
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
        from normlab.pack.grouping import plan_packs  # imports torch: only when launching
        from normlab.pack.run import run_members

        limit = self.max_members
        if limit is not None and not (type(limit) is int and limit >= 1):  # true is no count
            refuse(f"hydra.launcher.max_members={limit}; allowed: an integer >= 1, or null "
                   "(16 on the CPU, one per 2 GiB of GPU memory up to 64)")  # fmt: skip
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
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
        packs, alone = plan_packs({i: seen for i, (_, seen) in prepared.items()}, self.max_members)
        for i, reason in alone.items():
            log.info("job #%d runs alone: %s", initial_job_idx + i, reason)
            returns[i] = self.run_alone(configs[i])
        for pack in packs:
            values = run_members([prepared[i][1] for i in pack], sweep_dir / ".packs")
            for i, value in zip(pack, values, strict=True):
                ret = prepared[i][0]
                ret.status, ret.return_value = JobStatus.COMPLETED, value
                returns[i] = ret
        return returns
