"""Packs dispatched to executors (normlab.sweep_dispatch): planned where the sweep is launched,
trained as submitit jobs on this machine (one per device at once), requeued after a signal and
resumed exactly; every member's numbers the same as in-process packs'."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytorch_lightning.plugins.environments import SLURMEnvironment

from normlab.run.job import Member
from normlab.run.trainer import make_trainer
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.pack.test_member_contract import report_tables_differ
from tests.pack.test_packed_runs import numbers_match, records, sweep
from tests.runs import REPO, tiny_overrides
from tests.test_config import make

FLOAT64 = ["callbacks=none", "trainer.precision=64-true"]


def pack_processes(job_id: int) -> list[int]:
    """The processes under a submitit local job (its id: the pid of the shell or controller
    that starts it) that run a pack (submitit.core._submit), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue

    def under(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == job_id:
                return True
        return False

    found = []
    for pid in parents:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"submitit.core._submit" in command and under(pid):
            found.append(pid)
    return found


@pytest.mark.slow
def test_submitit_packs_on_two_devices_signalled_mid_epoch_equal_in_process_packs(tmp_path):
    """2 norms x 2 seeds, float64: hydra/launcher=packed_submitit_local with two (fake) devices
    runs its 2 packs as submitit jobs, one on each device at once (each with its
    own CUDA_VISIBLE_DEVICES; trainer=cpu, so no GPU is needed). Once a pack has ended its
    first epoch, every running pack's job gets SIGUSR2 (a SLURM preemption's or time-out's
    signal under submitit): submitit requeues it into the same job, which resumes from its
    pack's last epoch's checkpoint. Every member ends with the numbers the in-process launcher
    gives (to 1e-9), the report gives the same table, and each member names its job."""
    data = write_tiny_cifar10(tmp_path / "data", per_batch=40)  # 40 steps an epoch at batch 4
    base = ["trainer=cpu", "model=cnn", *FLOAT64, "norm=batch,group", "data.batch_size=4",
            "seed=0,1", "data.val_size=40", "data.verify_checksums=false",
            "trainer.max_epochs=2", "trainer.enable_progress_bar=false", f"data.root={data}",
            f"paths.root={tmp_path / 'out'}"]  # fmt: skip
    sweep(*base, "hydra/launcher=packed", f"hydra.sweep.dir={tmp_path / 'inprocess'}")
    folder = tmp_path / "submitit"
    command = [sys.executable, "train.py", "-m", *base, "hydra/launcher=packed_submitit_local",
               "hydra.launcher.devices=[0,1]", f"hydra.sweep.dir={folder}"]  # fmt: skip
    launch = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)  # fmt: skip
    deadline = time.time() + 300
    while not list(folder.glob(".packs/*/checkpoints/last.ckpt")):  # a pack's epoch 0 ended
        assert launch.poll() is None and time.time() < deadline
        time.sleep(0.05)
    jobs = [d for d in (folder / ".submitit").iterdir() if d.name.isdigit()]  # by pid
    signalled = [p for d in jobs for p in pack_processes(int(d.name))]
    for task in signalled:
        os.kill(task, signal.SIGUSR2)
    output, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, output[-3000:]
    logs = [p.read_text() for p in (folder / ".submitit").glob("*/*_log.*")]
    assert signalled and sum("Requeued job" in text for text in logs) >= 1
    here, there = records(tmp_path / "inprocess"), records(folder)
    assert here.keys() == there.keys() and len(here) == 4
    for name, record in there.items():
        assert record["status"] == here[name]["status"] == "finished"
        assert numbers_match(record, here[name]) == [], name
        job = record["packed_with"]["job"]
        assert job["executor"] == "submitit_local" and job["id"]
        assert "job" not in here[name]["packed_with"]
    jobs = {r["packed_with"]["pack"]: r["packed_with"]["job"] for r in there.values()}
    assert len(jobs) == 2 and len({j["id"] for j in jobs.values()}) == 2  # a job per pack
    assert {j["devices"] for j in jobs.values()} == {"0", "1"}  # each pack one device
    assert report_tables_differ(folder, tmp_path / "inprocess") == []


def test_an_unknown_executor_is_one_line_before_any_job_folder(tmp_path):
    result = sweep(*tiny_overrides(tmp_path), "hydra/launcher=packed", "seed=0,1",
                   "hydra.launcher.executor=slurm", f"hydra.sweep.dir={tmp_path / 's'}",
                   check=False)  # fmt: skip
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: hydra.launcher.executor=slurm; allowed: inprocess, "
                           "submitit_local, submitit_slurm, ray")  # fmt: skip
    folder = tmp_path / "s"
    assert not folder.exists() or not [p for p in folder.iterdir() if p.is_dir()]


@pytest.mark.parametrize("submitit", [True, False])
def test_under_submitit_on_slurm_lightning_does_not_requeue_too(submitit, monkeypatch, tmp_path):
    """One requeue mechanism: in a SLURM job started by submitit, Lightning's SLURM
    environment has its own requeue (SIGUSR1) off; in a SLURM job of the user's, it keeps it."""
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "pack")
    if submitit:
        monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    else:
        monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    s = make(["trainer=cpu"])
    trainer = make_trainer([Member(s, tmp_path)], tmp_path).trainer
    environment = trainer._accelerator_connector.cluster_environment  # what Lightning chose
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is not submitit
