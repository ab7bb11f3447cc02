"""Resume: a run killed with SIGKILL (mid-epoch, between epochs, during validation, with or
without DataLoader workers) and started again with the same overrides ends exactly as an
uninterrupted run; checkpoints are written whole, and a torn one is passed over."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from normlab.config import ConfigError
from normlab.report import collect
from normlab.run.resume import (
    AtomicCheckpointIO,
    FitTimeInCheckpoint,
    RngStateInCheckpoint,
    checkpoint_to_resume,
)
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.runs import REPO, train

VARIES = {"fit_seconds", "best_checkpoint", "overrides"}  # overrides: paths differ


def draws() -> list:
    return [torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]]


def test_rng_state_saved_in_a_checkpoint_is_restored_at_the_next_epoch_start(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    saved = RngStateInCheckpoint().state_dict()
    torch.save({"callbacks": saved}, tmp_path / "c.ckpt")
    expected = draws()  # what an uninterrupted run draws in its next epoch
    torch.manual_seed(2), np.random.seed(2), random.seed(2)  # a resumed run starts elsewhere
    resumed = RngStateInCheckpoint()
    resumed.load_state_dict(torch.load(tmp_path / "c.ckpt", weights_only=True)["callbacks"])
    assert draws() != expected  # not at load: the resumed run's sanity check still draws
    resumed.on_train_epoch_start(None, None)
    assert draws() == expected
    later = draws()
    resumed.on_train_epoch_start(None, None)  # only once after a resume
    assert draws() != later


def test_fit_seconds_add_up_over_the_sessions_of_a_resumed_run(tmp_path):
    now = [100.0]
    first = FitTimeInCheckpoint(clock=lambda: now[0])
    first.on_fit_start(None, None)
    now[0] = 130.0
    torch.save({"callbacks": first.state_dict()}, tmp_path / "c.ckpt")  # 30 s in
    now[0] = 137.0  # killed 7 s after that checkpoint: lost work, not counted
    resumed = FitTimeInCheckpoint(clock=lambda: now[0])
    resumed.load_state_dict(torch.load(tmp_path / "c.ckpt", weights_only=True)["callbacks"])
    now[0] = 500.0
    resumed.on_fit_start(None, None)
    now[0] = 520.0
    assert resumed.seconds() == 50.0  # 30 before the checkpoint + 20 after the resume


def test_a_checkpoint_write_cut_short_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 4, "w": torch.ones(3)}, path)

    def killed_mid_write(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"global_step": 8, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["global_step"] == 4


def write_checkpoint(path, step: int, torn: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    AtomicCheckpointIO().save_checkpoint({"global_step": step, "w": torch.randn(1000)}, path)
    if torn:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_resume_passes_over_a_torn_checkpoint_to_the_newest_readable_one(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    write_checkpoint(folder / "best.ckpt", 8)
    write_checkpoint(folder / "last.ckpt", 8)
    assert checkpoint_to_resume(tmp_path, None) == str(folder / "last.ckpt")  # same step: last
    write_checkpoint(folder / "best.ckpt", 4)
    write_checkpoint(folder / "last.ckpt", 12, torn=True)
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(tmp_path, None) == str(folder / "best.ckpt")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "last.ckpt cannot be read" in warning and "\n" not in warning


def test_resume_starts_from_scratch_when_no_checkpoint_is_readable(tmp_path, caplog):
    assert checkpoint_to_resume(tmp_path, None) is None  # a new run: nothing said
    write_checkpoint(tmp_path / "checkpoints" / "last.ckpt", 12, torn=True)
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(tmp_path, None) is None
    assert "training from the start" in caplog.text


def test_an_unreadable_ckpt_path_is_refused_in_one_line(tmp_path):
    write_checkpoint(tmp_path / "x.ckpt", 12, torn=True)
    with pytest.raises(ConfigError, match=r"^ckpt_path=.*x\.ckpt cannot be read \(") as error:
        checkpoint_to_resume(tmp_path, str(tmp_path / "x.ckpt"))
    assert "\n" not in str(error.value)


def final_state(run_dir) -> dict:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"metrics": {k: v for k, v in metrics.items() if k not in VARIES},
            "tag_steps": steps_of_each_tag(run_dir), **checkpoint}  # fmt: skip


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def assert_same_end(resumed: dict, uninterrupted: dict) -> None:
    assert resumed["metrics"]["status"] == "finished"
    assert resumed["metrics"] == uninterrupted["metrics"]  # val, test, gap, drift, precise
    assert resumed["global_step"] == uninterrupted["global_step"] == EPOCHS * STEPS
    assert resumed["state_dict"]["model.stage1.conv1.norm.num_batches_tracked"] == EPOCHS * STEPS
    assert_same_tensors(resumed["state_dict"], uninterrupted["state_dict"])  # running stats too
    momentum = [{k: s["momentum_buffer"] for k, s in c["optimizer_states"][0]["state"].items()}
                for c in (resumed, uninterrupted)]  # fmt: skip
    assert_same_tensors(*momentum)
    assert resumed["lr_schedulers"] == uninterrupted["lr_schedulers"]


# 160 training images at batch 4: 40 steps an epoch. BN, so the running statistics and the
# train/eval probes depend on every batch; deterministic kernels on the CPU.
EPOCHS, STEPS = 3, 40
ARGS = ["trainer=cpu", "model=cnn", "norm=batch", "data.batch_size=4", "data.val_size=40",
        "data.verify_checksums=false", f"trainer.max_epochs={EPOCHS}",
        "trainer.enable_progress_bar=false", "trainer.deterministic=true"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_cifar10(tmp_path_factory.mktemp("data"), per_batch=40)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    """The reference for each data path: never killed, and without DataLoader workers."""
    done = {}

    def reference(resident: bool, compile: bool = False, norm: tuple = ()) -> dict:
        if (resident, compile, norm) not in done:
            root = tmp_path_factory.mktemp("uninterrupted")
            train(*with_norm(ARGS, norm), f"data.root={tiny_data}", f"data.resident={resident}",
                  f"compile={compile}", "data.num_workers=0", f"paths.root={root}")  # fmt: skip
            done[resident, compile, norm] = final_state(*(root / "runs").iterdir())
        return done[resident, compile, norm]

    return reference


def killed_at(point: str, root, *args) -> Path:
    """Runs train.py until it kills itself at `point` of epoch 1; returns its run folder."""
    command = [sys.executable, "tests/kill_at.py", point, *args, f"paths.root={root}"]
    killed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-3000:]
    (run_dir,) = (root / "runs").iterdir()
    assert not (run_dir / "metrics.json").exists()
    return run_dir


def with_norm(args: list[str], norm: tuple) -> list[str]:
    """`args` with norm=batch replaced by the overrides in `norm` (none: BN)."""
    return [a for a in args if a != "norm=batch"] + list(norm or ["norm=batch"])


# Batch Renorm, its r/d bounds ramped to their final values within epoch 0: its step is its
# num_batches_tracked, and compiled, r and d come from an opaque op (normlab::renorm_correction).
RENORM = ("norm=batch_renorm", "norm.warmup_steps=20", "norm.ramp_steps=60")
PER_IMAGE = ["data.resident=false"]  # PIL transforms in min(4, CPUs) persistent workers
# torch.compile on the CPU (its default there is eager), with Batch Renorm only: its module is
# BN's plus the opaque op, so one compiled case covers the compiled checkpoint of both.
COMPILED = "compile=true"


@pytest.mark.slow
@pytest.mark.parametrize(
    "point, data",
    [
        ("mid_epoch", []),  # the default: tensor-resident data, no workers
        ("mid_epoch", [COMPILED, *RENORM]),
        ("mid_epoch", [*PER_IMAGE, "data.num_workers=0"]),
        ("mid_epoch", PER_IMAGE),
        ("between_epochs", [*PER_IMAGE, "data.persistent_workers=false"]),
        ("validation", PER_IMAGE),
    ],
    ids=[
        "resident",
        "compiled_batch_renorm",
        "per_image",
        "workers",
        "workers_between_epochs",
        "workers_in_validation",
    ],
)
def test_killed_then_started_again_ends_as_an_uninterrupted_run(
    point, data, tiny_data, uninterrupted, tmp_path
):
    norm = tuple(a for a in data if a.startswith("norm"))
    args = [*with_norm(ARGS, norm), f"data.root={tiny_data}", *(a for a in data if a not in norm)]
    run_dir = killed_at(point, tmp_path, *args)
    at_kill = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert at_kill["global_step"] == STEPS  # epoch 0's end

    started = time.perf_counter()
    result = train(*args, f"paths.root={tmp_path}")  # the same overrides, the same folder
    resumed_seconds = time.perf_counter() - started
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" in result.stdout + result.stderr
    # fit_seconds counts epoch 0, run before the kill, too: more than the resumed session took
    before = at_kill["callbacks"]["FitTimeInCheckpoint"]["seconds"]
    fit_seconds = json.loads((run_dir / "metrics.json").read_text())["fit_seconds"]
    assert 0 < before < fit_seconds < before + resumed_seconds
    reference = uninterrupted(resident=PER_IMAGE[0] not in data, compile=COMPILED in data,
                              norm=norm)  # fmt: skip
    assert_same_end(final_state(run_dir), reference)


@pytest.mark.slow
def test_a_torn_last_checkpoint_is_reported_and_the_run_still_ends_as_an_uninterrupted_one(
    tiny_data, uninterrupted, tmp_path
):
    args = [*ARGS, f"data.root={tiny_data}", *PER_IMAGE]
    run_dir = killed_at("mid_epoch", tmp_path, *args)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # killed while writing it

    result = train(*args, f"paths.root={tmp_path}")
    output = result.stdout + result.stderr
    assert f"{last} cannot be read" in output
    assert f"resuming from {run_dir / 'checkpoints' / 'best.ckpt'}" in output
    assert_same_end(final_state(run_dir), uninterrupted(resident=False))


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupted_run_records_it_and_then_resumes_to_the_uninterrupted_end(
    signal_name, tiny_data, uninterrupted, tmp_path
):
    """Ctrl-C or SIGTERM mid-epoch: the exit is not 0, metrics.json says `interrupted` with the
    step it stopped at, the report lists it so; the same command then (after SIGTERM) ends as an
    uninterrupted run, and TensorBoard holds the same points, one per step of each tag."""
    args = [*ARGS, f"data.root={tiny_data}"]
    command = [sys.executable, "tests/kill_at.py", "mid_epoch", *args, f"paths.root={tmp_path}"]
    stopped = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, "KILL_WITH": signal_name})  # fmt: skip
    assert stopped.returncode not in (0, -9), stopped.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "interrupted" and STEPS < record["step"] <= 2 * STEPS
    (row,) = collect(tmp_path / "runs")
    assert (row["status"], row["step"]) == ("interrupted", record["step"])
    if signal_name == "SIGINT":
        return  # resuming after either signal is the same; the suite's time is spent once

    train(*args, f"paths.root={tmp_path}")
    assert_same_end(final_state(run_dir), uninterrupted(resident=True))
    assert final_state(run_dir)["tag_steps"] == uninterrupted(resident=True)["tag_steps"]


def steps_of_each_tag(run_dir: Path) -> dict[str, list[int]]:
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [e.step for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}
