"""Where a sweep's packs train, once they are planned where the sweep was launched: in the
launching process one after another (inprocess), as submitit jobs (local processes, or one
SLURM array task per pack) or as Ray tasks. Each pack is a PackTask: picklable, so a worker on
another machine runs it, and resumable, so a requeued or retried pack resumes from its
last.ckpt (the same command's exact resume)."""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from normlab.config import ConfigError
from normlab.pack.run import run_members

log = logging.getLogger(__name__)

EXECUTORS = ("inprocess", "submitit_local", "submitit_slurm", "ray")


@dataclass
class Executor:
    """hydra.launcher's options for where packs run (conf/hydra/launcher/packed*.yaml)."""

    name: str = "inprocess"
    array_parallelism: int = 2  # packs at once (submitit); SLURM's %N of the array
    devices: list[int] | None = None  # one machine: one pack per device, with its own GPU
    timeout_min: int = 240
    max_num_timeout: int = 3  # requeues after a time-out (submitit); Ray: retries
    gpus_per_pack: int = 0
    cpus_per_pack: int = 1
    mem_gb: int | None = None
    partition: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines before a pack's job starts
    address: str | None = None  # Ray: a running cluster's; null: a local one

    def __post_init__(self):
        if self.name not in EXECUTORS:
            raise ConfigError(f"hydra.launcher.executor={self.name}; allowed: "
                              f"{', '.join(EXECUTORS)}")  # fmt: skip
        if not (type(self.array_parallelism) is int and self.array_parallelism >= 1):
            raise ConfigError(f"hydra.launcher.array_parallelism={self.array_parallelism}; "
                              "allowed: an integer >= 1")  # fmt: skip


@dataclass
class PackTask:
    """One pack's training (normlab.pack.run.run_members), run by a worker; returns each
    member's final validation accuracy. `executor` names who ran it in each member's record
    (``packed_with.job``)."""

    jobs: list[dict]
    pack_root: Path
    executor: str = "inprocess"

    def __call__(self) -> list[float]:
        return run_members(self.jobs, self.pack_root, job=self.job())

    def job(self) -> dict | None:
        if self.executor == "inprocess":
            return None
        devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self.executor == "ray":
            import ray

            return {"executor": "ray", "id": ray.get_runtime_context().get_task_id(),
                    "devices": devices}  # fmt: skip
        import submitit

        return {"executor": self.executor, "id": submitit.JobEnvironment().job_id,
                "devices": devices}  # fmt: skip

    def checkpoint(self, *args, **kwargs):
        """submitit, on preemption or a time-out signal: requeue this pack as it is. Its
        last.ckpt (written at every epoch's end) is what it resumes from, exactly; the
        interrupted epoch is trained again."""
        import submitit

        log.warning("pack signalled (preemption or time-out): requeued; it resumes from its "
                    "last epoch's checkpoint")  # fmt: skip
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def run_packs(tasks: list[PackTask], executor: Executor, folder: Path) -> list[list[float]]:
    """Each task's values, in order, run where `executor` says (`folder`: the sweep's, where
    submitit keeps its jobs' logs under .submitit/)."""
    if executor.name == "inprocess" or not tasks:
        return [task() for task in tasks]
    if executor.name == "ray":
        return on_ray(tasks, executor)
    return on_submitit(tasks, executor, Path(folder) / ".submitit")


def on_submitit(tasks: list[PackTask], executor: Executor, folder: Path) -> list[list[float]]:
    import submitit

    options = {"timeout_min": executor.timeout_min, "cpus_per_task": executor.cpus_per_pack}
    if executor.name == "submitit_slurm":
        slurm = submitit.SlurmExecutor(folder / "%j", max_num_timeout=executor.max_num_timeout)
        slurm.update_parameters(**options, gpus_per_node=executor.gpus_per_pack,
                                partition=executor.partition, mem=f"{executor.mem_gb}GB"
                                if executor.mem_gb else None, setup=executor.setup,
                                array_parallelism=executor.array_parallelism)  # fmt: skip
        with slurm.batch():
            jobs = [slurm.submit(task) for task in tasks]
        log.info("submitted %d packs as SLURM array %s", len(jobs), jobs[0].job_id.split("_")[0])
        return [values(job, task) for job, task in zip(jobs, tasks, strict=True)]
    local = submitit.LocalExecutor(folder / "%j", max_num_timeout=executor.max_num_timeout)
    slots = list(executor.devices) if executor.devices else [None] * executor.array_parallelism
    # the machine's cores shared out among the packs at once (each would take them all:
    # 2 packs of 2 threads on 2 cores ran 2.4x slower than one after another)
    threads = f"export OMP_NUM_THREADS={max(1, (os.cpu_count() or 1) // len(slots))}"
    setup = executor.setup if any("OMP_NUM_THREADS" in s for s in executor.setup) else [
        threads, *executor.setup]  # fmt: skip
    waiting, running, out = list(enumerate(tasks)), {}, [None] * len(tasks)
    while waiting or running:
        while waiting and slots:
            (i, task), device = waiting.pop(0), slots.pop(0)
            gpus = {} if device is None else {"gpus_per_node": 1, "visible_gpus": [device]}
            local.update_parameters(**options, **gpus, setup=setup)
            running[i] = (local.submit(task), device)
            log.info("pack %d of %d: submitit job %s%s", i + 1, len(tasks), running[i][0].job_id,
                     "" if device is None else f" on device {device}")  # fmt: skip
        for i, (job, device) in list(running.items()):
            if job.done():
                out[i] = values(job, tasks[i])
                slots.append(device)
                del running[i]
        time.sleep(0.2)
    return out


def values(job, task: PackTask) -> list[float]:
    """A finished job's values; a job that failed outside the pack's own failure handling
    (killed, out of requeues) is logged, its members NaN."""
    try:
        return job.result()
    except Exception as error:  # its members' records say what they reached
        log.error("pack job %s failed: %s", job.job_id, str(error).strip().splitlines()[-1])
        return [float("nan")] * len(task.jobs)


def on_ray(tasks: list[PackTask], executor: Executor) -> list[list[float]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("hydra.launcher.executor=ray needs ray; allowed: pip install "
                          "'normlab[ray]', or another executor") from None  # fmt: skip
    ray.init(address=executor.address, ignore_reinit_error=True, log_to_driver=False)
    gpus, asked = ray.cluster_resources().get("GPU", 0), executor.gpus_per_pack
    if asked > gpus:  # its tasks would wait for ever
        raise ConfigError(f"hydra.launcher.gpus_per_pack={asked}, but the Ray cluster has "
                          f"{gpus:g} GPUs; allowed: at most {gpus:g} (0 on CPUs)")  # fmt: skip
    remote = ray.remote(num_gpus=executor.gpus_per_pack, num_cpus=executor.cpus_per_pack,
                        max_retries=executor.max_num_timeout)(run_task)  # fmt: skip
    return ray.get([remote.remote(task) for task in tasks])


def run_task(task: PackTask) -> list[float]:
    return task()


__all__ = ["EXECUTORS", "Executor", "PackTask", "run_packs"]
