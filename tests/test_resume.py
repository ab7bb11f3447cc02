"""Resume: a run killed with SIGKILL mid-epoch and started again with the same overrides ends
exactly as an uninterrupted run; the checkpoint carries the RNG state."""

import json
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from normlab.resume import RngStateInCheckpoint
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.runs import REPO, train

VARIES = {"fit_seconds", "best_checkpoint"}


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


def final_state(run_dir) -> dict:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"metrics": {k: v for k, v in metrics.items() if k not in VARIES}, **checkpoint}


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_sigkill_mid_epoch_then_start_again_ends_as_an_uninterrupted_run(tmp_path):
    data = write_tiny_cifar10(tmp_path / "data", per_batch=200)
    # 1000 training images at batch 4: 240 steps an epoch, a few seconds, long enough to kill.
    args = ["trainer=cpu", "model=cnn", "norm=batch", f"data.root={data}", "data.batch_size=4",
            "data.verify_checksums=false", "data.val_size=40", "data.num_workers=0",
            "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
            "trainer.deterministic=true"]  # fmt: skip
    killed_root, straight_root = tmp_path / "killed", tmp_path / "straight"
    train(*args, f"paths.root={straight_root}")  # (one at a time: 2 cores, torch threads spin)
    command = [sys.executable, "train.py", *args, f"paths.root={killed_root}"]
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = subprocess.Popen(command, cwd=REPO, **quiet)
    deadline = time.monotonic() + 300
    while not list(killed_root.glob("runs/*/checkpoints/last.ckpt")):
        assert time.monotonic() < deadline and killed.poll() is None, "no checkpoint to resume"
        time.sleep(0.1)
    time.sleep(1.5)  # into the second epoch, past the checkpoint's write
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    (run_dir,) = (killed_root / "runs").iterdir()
    assert not (run_dir / "metrics.json").exists(), "the kill came too late to test anything"
    at_kill = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert at_kill["global_step"] < 3 * 240

    result = train(*args, f"paths.root={killed_root}")  # the same overrides, the same folder
    assert "resuming from" in result.stdout + result.stderr
    resumed, uninterrupted = final_state(run_dir), final_state(*(straight_root / "runs").iterdir())
    assert resumed["metrics"]["status"] == "finished"
    assert resumed["metrics"] == uninterrupted["metrics"]  # val, test, gap, drift, precise
    assert resumed["global_step"] == uninterrupted["global_step"] == 3 * 240
    assert resumed["state_dict"]["model.features.1.num_batches_tracked"].item() == 3 * 240
    assert_same_tensors(resumed["state_dict"], uninterrupted["state_dict"])  # running stats too
    momentum = [{k: s["momentum_buffer"] for k, s in c["optimizer_states"][0]["state"].items()}
                for c in (resumed, uninterrupted)]  # fmt: skip
    assert_same_tensors(*momentum)
    assert resumed["lr_schedulers"] == uninterrupted["lr_schedulers"]
