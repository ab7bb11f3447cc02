"""A run killed with SIGKILL mid-epoch continues from its last checkpoint when started again
with the same overrides, and finishes the planned training."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.data.tiny_cifar import write_tiny_cifar10
from tests.runs import REPO, train

pytestmark = pytest.mark.slow


def test_sigkill_mid_epoch_then_start_again_resumes(tmp_path):
    data = write_tiny_cifar10(tmp_path / "data", per_batch=200)
    # 1000 training images at batch 4: 240 steps an epoch, a few seconds, long enough to kill.
    args = ["trainer=cpu", "model=cnn", "norm=batch", f"data.root={data}", "data.batch_size=4",
            "data.verify_checksums=false", "data.val_size=40", "data.num_workers=0",
            "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
            f"paths.root={tmp_path / 'out'}"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    runs = tmp_path / "out" / "runs"
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/checkpoints/last.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # into the second epoch, past the checkpoint's write
    process.send_signal(signal.SIGKILL)
    process.wait()
    (run_dir,) = runs.iterdir()
    assert not (run_dir / "metrics.json").exists(), "the kill came too late to test anything"
    killed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert killed["epoch"] < 2

    result = train(*args)  # the same overrides, so the same run folder and its last.ckpt
    assert "resuming from" in result.stdout + result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert metrics["status"] == "finished"
    assert final["epoch"] == 2 and final["global_step"] == 3 * 240
    assert final["state_dict"]["model.features.1.num_batches_tracked"].item() == 3 * 240
