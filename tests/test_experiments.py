"""Experiment configs compose, expand to the expected jobs, and every job builds its model."""

import json
import os
import types
from pathlib import Path

import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from normlab.config import load_settings, parallel_jobs
from normlab.data import dataset_spec
from normlab.run.build import build_module
from tests.configs import compose
from tests.runs import REPO, tiny_overrides, train

CONF = REPO / "conf"
# experiment -> (jobs in its sweep, the small CPU variant its header documents)
EXPERIMENTS = {
    "bn_vs_gn_batch": (14, ["data=fashion_mnist", "model=cnn", "trainer.max_epochs=5"]),
    "norms_at_32": (4, ["data=fashion_mnist", "model=cnn"]),
    "group_count": (7, ["data=fashion_mnist", "model=cnn", "norm.num_groups=1,2,4,8,16"]),
    "group_size": (7, ["data=fashion_mnist", "model=cnn", "norm.group_size=1,2,4,8,16"]),
    "norm_batch_vs_sgd_batch": (7, ["data=fashion_mnist", "model=cnn", "trainer.max_epochs=5"]),
    "small_batch_remedies": (12, ["data=fashion_mnist", "model=cnn", "trainer.max_epochs=5"]),
    "lr_vs_batch": (40, ["data=fashion_mnist", "model=cnn", "trainer.max_epochs=5"]),
    "bn_vs_gn_resnet20": (4, ["data=fashion_mnist", "trainer.max_epochs=5"]),
}


make = compose


def jobs(name: str, extra=()) -> list[list[str]]:
    """The overrides of each job Hydra's basic sweeper launches for `-m experiment=name *extra`
    (a comma list in `extra` replaces the experiment's sweep of that key, as on the command
    line), each with the fixed overrides of `extra`."""
    fixed = [o for o in extra if "," not in o]
    cfg = make([f"experiment={name}", *fixed], hydra=True)
    params = {k: str(v) for k, v in cfg.hydra.sweeper.params.items()}
    params.update(o.split("=", 1) for o in extra if "," in o)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return [[*fixed, *job] for job in batch]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_sweep_size(name):
    assert len(jobs(name)) == EXPERIMENTS[name][0]
    cpu_jobs = len(jobs(name, EXPERIMENTS[name][1]))
    assert cpu_jobs == (5 if name.startswith("group_") else EXPERIMENTS[name][0])


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
@pytest.mark.parametrize("variant", [pytest.param("full", marks=pytest.mark.slow), "cpu"])
def test_every_job_builds(name, variant):
    extra = EXPERIMENTS[name][1] if variant == "cpu" else []
    for job in jobs(name, extra):
        s = load_settings(make([f"experiment={name}", *job]))
        module, spec = build_module(s), dataset_spec(s.data.name)
        x = torch.randn(2, spec.in_channels, spec.image_size, spec.image_size)
        with torch.no_grad():
            assert module(x).shape == (2, spec.num_classes), job


def test_launcher_presets_compose():
    cfg = make(["hydra/launcher=parallel"], hydra=True)
    assert "joblib" in cfg.hydra.launcher._target_.lower()
    assert cfg.hydra.launcher.n_jobs == parallel_jobs()  # this host's default
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = make(["hydra/launcher=slurm"], hydra=True)
    assert "submitit" in cfg.hydra.launcher._target_.lower()
    assert cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.parametrize(
    ("cores", "memory_gib", "n_jobs"), [(16, 80, 8), (16, 24, 3), (4, 141, 2), (1, 16, 1)]
)
def test_parallel_launcher_packs_runs_by_gpu_memory_and_host_cores(
    cores, memory_gib, n_jobs, monkeypatch
):
    gpu = types.SimpleNamespace(total_memory=memory_gib * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: gpu)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert make(["hydra/launcher=parallel"], hydra=True).hydra.launcher.n_jobs == n_jobs


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    [[], ["data.resident=false"], ["data.resident=false", "data.num_workers=0"]],
    ids=["resident", "per-image-default-workers", "per-image-no-workers"],
)
def test_parallel_launcher_finishes_its_jobs(tmp_path: Path, data):
    sweep = tmp_path / "sweep"
    overrides = [o for o in tiny_overrides(tmp_path) if not o.startswith("data.num_workers")]
    train("-m", *overrides, *data, "hydra/launcher=parallel", "norm=batch,group",
          f"hydra.sweep.dir={sweep}")  # fmt: skip
    records = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert sorted(r["norm"] for r in records) == ["batch", "group"]
    assert [r["status"] for r in records] == ["finished"] * 2, records


def test_no_committed_study_file_names_a_machine_s_folder():
    """Every text file under experiments/ (records, Hydra files, perf logs) is free of absolute
    paths of the machine that ran it (normlab.report.portable rewrites them)."""
    from normlab.report.portable import machine_paths

    found = {}
    for path in sorted((REPO / "experiments").rglob("*")):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".yaml", ".md", ".txt", ".csv"}:
            paths = machine_paths(path.read_text(errors="replace"))
            if paths:
                found[str(path.relative_to(REPO))] = paths[:2]
    assert found == {}


def test_every_committed_run_names_the_folder_it_sits_in():
    """A committed run's hydra.yaml gives, as its output folder, the folder it is committed in
    (relative to the repository), so a reader can follow it back to the run."""
    from omegaconf import OmegaConf

    elsewhere = {}
    for hydra_file in sorted((REPO / "experiments").rglob(".hydra/hydra.yaml")):
        run = str(hydra_file.parent.parent.relative_to(REPO))
        named = str(OmegaConf.load(hydra_file).hydra.runtime.output_dir)
        if named != run:
            elsewhere[run] = named
    assert elsewhere == {}


def test_machine_paths_are_rewritten_from_where_the_run_sits_now(tmp_path):
    """A run folder moved from the machine's sweep folder into a study: its Hydra files name the
    study's folder and `.` for the checkout; its record's checkpoint and pack folder are
    relative to it."""
    from normlab.report.portable import machine_paths, make_portable

    run = tmp_path / "experiments" / "study" / "runs" / "norm=batch,seed=1"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  sweep:\n    dir: /work/sweeps/s1\n  runtime:\n    cwd: /home/me/normlab\n"
        "    config_sources:\n    - path: /home/me/normlab/conf\n"
        "    output_dir: /work/sweeps/s1/norm=batch,seed=1\n"
    )
    record = {"best_checkpoint": "/work/sweeps/s1/norm=batch,seed=1/checkpoints/best.ckpt",
              "packed_with": {"pack": "pack-a", "folder": "/work/sweeps/s1/.packs/pack-a"},
              "val_acc": 0.5}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(record, indent=2))
    make_portable(tmp_path / "experiments" / "study" / "runs", tmp_path)
    hydra = (run / ".hydra" / "hydra.yaml").read_text()
    assert machine_paths(hydra) == []
    assert "dir: experiments/study/runs\n" in hydra and "cwd: .\n" in hydra
    assert "output_dir: experiments/study/runs/norm=batch,seed=1\n" in hydra
    assert json.loads((run / "metrics.json").read_text()) == {
        "best_checkpoint": "checkpoints/best.ckpt",
        "packed_with": {"pack": "pack-a", "folder": "../.packs/pack-a"},
        "val_acc": 0.5,
    }


def test_a_run_renamed_on_its_way_into_a_study_names_its_new_folder(tmp_path):
    """Hydra names a run folder after its overrides, commas and all; copied into a study under a
    shorter name, its hydra.yaml names the new folder whole, not the old one's tail."""
    from normlab.report.portable import machine_paths, make_portable

    old = "/work/sweeps/b2/norm=batch,data.batch_size=2,callbacks=none~f0408baa"
    run = tmp_path / "experiments" / "study" / "runs" / "norm=batch,seed=0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  run:\n    dir: {old}\n  sweep:\n    dir: /work/sweeps/b2\n"
        f"  runtime:\n    cwd: /work/tree\n    output_dir: {old}\n"
        f"  job_logging:\n    filename: {old}/train.log\n"
    )
    make_portable(tmp_path / "experiments" / "study" / "runs", tmp_path)
    hydra = (run / ".hydra" / "hydra.yaml").read_text()
    assert machine_paths(hydra) == []
    new = "experiments/study/runs/norm=batch,seed=0"
    assert f"output_dir: {new}\n" in hydra and f"dir: {new}\n" in hydra
    assert f"filename: {new}/train.log\n" in hydra and "callbacks=none" not in hydra
