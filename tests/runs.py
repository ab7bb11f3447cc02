"""Run training on a tiny CIFAR-10 copy: in this process (run()), or as a user would, with
train.py in a subprocess, where the exit code, the console or Hydra's launcher is under test."""

import subprocess
import sys
from pathlib import Path

from normlab.run.fit import run
from normlab.run.record import RunRecord
from tests.configs import compose
from tests.data.tiny_cifar import write_tiny_cifar10

REPO = Path(__file__).resolve().parents[1]


def train(*overrides, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def train_here(*overrides, run_dir: Path) -> RunRecord:
    """run() in this process with these overrides, into `run_dir`: train.py's work without an
    interpreter start-up."""
    return run(compose(overrides), run_dir=run_dir)


def tiny_overrides(tmp_path: Path) -> list[str]:
    """A few batches of the small CNN on a tiny CIFAR-10 copy written under tmp_path."""
    root = write_tiny_cifar10(tmp_path / "data")
    return ["trainer=debug", "model=cnn", f"data.root={root}", "data.verify_checksums=false",
            "data.val_size=40", "data.num_workers=0", f"paths.root={tmp_path / 'out'}"]  # fmt: skip
