"""Multi-device runs say what they compute: two CPU processes (DDP, gloo) through train.py,
and the batch bookkeeping and SyncBN switches behind them."""

import json

import pytest

from normlab.config import ConfigError
from normlab.distributed import batch_sizes
from normlab.norms import BatchNorm2d
from normlab.run.build import build_module
from tests.configs import make
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.runs import train


@pytest.mark.slow
def test_a_two_process_run_finishes_and_records_what_it_ran(tmp_path):
    root = write_tiny_cifar10(tmp_path / "data", per_batch=20, test=30)
    run_dir = tmp_path / "run"
    result = train("trainer=cpu", "trainer.strategy=ddp", "trainer.devices=2", "model=cnn",
                   "norm=batch", "norm.sync=true", "data.batch_size=4", "data.val_size=20",
                   f"data.root={root}", "data.verify_checksums=false", "trainer.max_epochs=1",
                   "trainer.enable_progress_bar=false", "callbacks.drift.every_n_steps=2",
                   f"hydra.run.dir={run_dir}")  # fmt: skip
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert (metrics["devices"], metrics["batch_size"], metrics["sgd_batch_size"]) == (2, 4, 8)
    assert metrics["norm_batch_size"] == 8  # synced: the statistics span both devices
    assert metrics["lr"] == pytest.approx(0.1 * 8 / 128)  # from the SGD batch
    assert metrics["test_images"] == 30  # each test image once: 15 per rank, no padding
    assert "sync_dist" not in result.stdout + result.stderr  # no per-rank metrics warning
    assert "gap_val_acc_eval" in metrics and "precise_distance_max" in metrics  # rank zero's


def test_batch_sizes_per_device_synced_and_virtual():
    def sizes(*overrides, world=4):
        return batch_sizes(make(["data.batch_size=16", *overrides]), world)

    assert sizes("norm=batch") == {"devices": 4, "sgd_batch_size": 64, "norm_batch_size": 16}
    assert sizes("norm=batch", "norm.sync=true")["norm_batch_size"] == 64
    assert sizes("norm=batch", "trainer.sync_batchnorm=true")["norm_batch_size"] == 64
    assert sizes("norm=ghost_batch", "norm.virtual_batch_size=4")["norm_batch_size"] == 4
    assert sizes("norm=group")["norm_batch_size"] == 1
    assert sizes("norm=none")["norm_batch_size"] is None


def test_trainer_sync_batchnorm_syncs_normlab_bn_or_is_refused_in_one_line():
    module = build_module(make(["norm=batch", "trainer.sync_batchnorm=true"]))
    layers = [m for m in module.modules() if isinstance(m, BatchNorm2d)]
    assert layers and all(m.sync and "sync=True" in repr(m) for m in layers)
    with pytest.raises(ConfigError) as error:
        build_module(make(["norm=group", "trainer.sync_batchnorm=true"]))
    assert str(error.value) == (
        "trainer.sync_batchnorm=true with norm=group; allowed: false, or a norm with batch "
        "statistics to synchronize across devices: batch, batch_renorm"
    )
