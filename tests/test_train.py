"""End to end, on a tiny CIFAR-10 copy and on Fashion-MNIST: `python train.py` in a subprocess
where the console, the exit code or Hydra is under test, run() in this process elsewhere."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from normlab.config import run_name
from tests.data.available import needs_fashion_mnist
from tests.runs import tiny_overrides, train, train_here

pytestmark = pytest.mark.slow


def tensorboard_runs(root: Path) -> dict:
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    return {run: tags["scalars"] for run, tags in mux.Runs().items()}


def test_single_run_writes_metrics_checkpoints_and_events(tmp_path):
    run_dir = tmp_path / "run"
    result = train(*tiny_overrides(tmp_path), "norm=group", "data.batch_size=8",
                   f"hydra.run.dir={run_dir}")  # fmt: skip
    console = result.stdout + result.stderr
    for noise in ("Tip:", "LeafSpec", "Total Flops", str(run_dir / "checkpoints")):
        assert noise not in console, noise
    assert "Restoring states from the checkpoint path at checkpoints/best.ckpt" in console
    (epoch_line,) = [line for line in console.splitlines() if "epoch 1/1:" in line]
    assert "val/acc" in epoch_line and "probes" in epoch_line
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "norm=group" in metrics["overrides"] and "data.batch_size=8" in metrics["overrides"]
    assert metrics["status"] == "finished"
    assert (metrics["norm"], metrics["model"], metrics["dataset"]) == ("group", "cnn", "cifar10")
    assert metrics["batch_size"] == 8 and metrics["lr"] == pytest.approx(0.1 * 8 / 128)
    assert metrics["norm.num_groups"] == 8 and metrics["seed"] == 0
    for key in ("val_acc", "test_acc", "best_val_acc"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["val_loss"] > 0 and metrics["test_loss"] > 0
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    tags = tensorboard_runs(run_dir)["."]
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "test/loss",
            "train/loss_step"} <= set(tags)  # fmt: skip


def test_default_run_folder_is_named_by_overrides(tmp_path):
    train(*tiny_overrides(tmp_path), "norm=instance")
    (run_dir,) = (tmp_path / "out" / "runs").iterdir()
    # paths, data.root and data.num_workers are left out of the name; norm first; 82
    # characters in all, so cut to 80 with a hash of the whole
    assert run_dir.name.startswith("norm=instance,data.val_size=40,data.verify_checksums=false,")
    assert len(run_dir.name) <= 80 and "trainer=debug" not in run_dir.name
    assert run_dir.name == run_name(
        "data.val_size=40,data.verify_checksums=false,model=cnn,norm=instance,trainer=debug"
    )
    assert (run_dir / "metrics.json").is_file()


def test_multirun_2x2_gives_4_runs_side_by_side(tmp_path):
    """...with the default progress bar setting (off in a sweep): one line per epoch and one
    result line per run, no progress bar, test table or checkpoint chatter."""
    sweep = tmp_path / "sweep"
    result = train("-m", *tiny_overrides(tmp_path), "norm=batch,group", "data.batch_size=4,8",
                   "trainer.max_epochs=2", "trainer.enable_progress_bar=null",
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    console = result.stdout + result.stderr
    lines = console.splitlines()
    assert [len([x for x in lines if f"epoch {e}/2:" in x]) for e in (1, 2)] == [4, 4]
    assert len([x for x in lines if ": finished, val/acc " in x]) == 4
    for noise in ("\r", "it/s", "Test metric", "Restoring states", "Trainer.fit` stopped"):
        assert noise not in console, noise
    names = {p.name for p in sweep.iterdir() if p.is_dir()}
    assert len(names) == 4
    for name in names:  # named by the overrides the sweep varies: norm first, then the batch
        metrics = json.loads((sweep / name / "metrics.json").read_text())
        assert metrics["status"] == "finished"
        assert name == f"norm={metrics['norm']},data.batch_size={metrics['batch_size']}"
        assert "model=cnn" in metrics["overrides"]  # the constant ones are recorded there
    runs = tensorboard_runs(sweep)
    assert set(runs) == names | {"."}  # the sweep's root: its HPARAMS experiment, no scalars
    assert all("val/acc" in runs[name] for name in names) and not runs["."]


def test_missing_dataset_is_one_clear_line(tmp_path):
    result = train(f"data.root={tmp_path / 'empty'}", "data.download=false",
                   f"paths.root={tmp_path / 'out'}", check=False)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(tmp_path / "empty" / "cifar-10-batches-py") in lines[0]
    assert "cifar-10-python.tar.gz" in lines[0] and "data.root=" in lines[0]


def test_bad_group_count_is_one_clear_line(tmp_path):
    result = train("norm=group", "norm.num_groups=5", f"paths.root={tmp_path}", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: layer stem.norm (16 channels): group norm on 16 channels: num_groups=5 does not "
        "divide 16; valid num_groups: [1, 2, 4, 8, 16]"
    ]


@needs_fashion_mnist
def test_fashion_mnist_smoke_run(tmp_path):
    run_dir = tmp_path / "run"
    metrics = train_here("data=fashion_mnist", "trainer=debug", "model=resnet20", "norm=batch",
                         f"data.root={tmp_path / 'data'}", "data.batch_size=16",
                         run_dir=run_dir).metrics  # fmt: skip
    assert metrics["status"] == "finished" and metrics["dataset"] == "fashion_mnist"
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_divergence_stops_the_run_and_is_recorded(tmp_path):
    """Small-batch BN with an lr far too high: the loss goes NaN, the run ends cleanly."""
    run_dir = tmp_path / "run"
    train_here(
        *tiny_overrides(tmp_path),
        "norm=batch",
        "data.batch_size=2",
        "optim.base_lr=1e9",
        "trainer.limit_train_batches=20",
        run_dir=run_dir,
    )  # no exception
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and 0 <= metrics["step"] < 20
    assert metrics["diverged_at_step"] == metrics["step"]
    scalars = tensorboard_runs(run_dir)["."]
    assert "z_hp/diverged_at_step" in scalars


def test_a_finished_run_is_not_trained_again(tmp_path, caplog):
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(tmp_path), "norm=group"]
    first = train_here(*args, run_dir=run_dir)
    before = (run_dir / "metrics.json").read_text()
    checkpoint = (run_dir / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="normlab.run.fit"):
        again = train_here(*args, run_dir=run_dir)
    assert "already finished" in caplog.text and again.metrics == first.metrics
    assert (run_dir / "metrics.json").read_text() == before
    assert (run_dir / "checkpoints" / "best.ckpt").stat().st_mtime_ns == checkpoint


def test_last_checkpoint_is_written_at_every_validation_even_without_a_new_best(tmp_path):
    # lr 0 and GroupNorm: nothing changes, so validation accuracy never beats epoch 0's.
    run_dir = tmp_path / "run"
    train_here(*tiny_overrides(tmp_path), "norm=group", "data.batch_size=8", "optim.base_lr=0",
               "trainer.max_epochs=3", run_dir=run_dir)  # fmt: skip
    best, last = (torch.load(run_dir / "checkpoints" / f"{name}.ckpt", weights_only=False)
                  for name in ("best", "last"))  # fmt: skip
    assert best["global_step"] == 4
    assert last["global_step"] == 3 * 4 and last["epoch"] == 2


def test_precise_bn_recalibration_every_epoch_validates_with_population_statistics(tmp_path):
    """apply_every_epoch: before each validation the running statistics become the population
    ones, so validation accuracy is the population-statistics accuracy and the EMA-vs-population
    distance measured at that validation is 0. (16 validation images, within the probes' share
    of the 184 an epoch trains on: the probes see every image val/acc sees.)"""
    run_dir = tmp_path / "run"
    tiny = [o for o in tiny_overrides(tmp_path) if not o.startswith("data.val_size=")]
    metrics = train_here(*tiny, "data.val_size=16", "norm=batch", "data.batch_size=4",
                         "trainer.max_epochs=2", "trainer.limit_val_batches=null",
                         "trainer.limit_train_batches=null",
                         "callbacks.population.every_n_epochs=1",
                         "callbacks.population.apply_every_epoch=true",
                         run_dir=run_dir).metrics  # fmt: skip
    assert metrics["status"] == "finished"
    assert metrics["precise_distance_max"] == 0.0
    population = metrics["precise_val_acc_population"]
    assert metrics["val_acc"] == pytest.approx(population, abs=1e-6)  # float32 vs count ratio
    assert metrics["gap_val_acc_eval"] == population


REMEDIES = [("norm=batch_renorm",), ("norm=ghost_batch", "norm.virtual_batch_size=2"),
            ("norm=frn",), ("norm=group", "model.weight_standardization=true")]  # fmt: skip


@pytest.mark.parametrize("norm", REMEDIES)
def test_small_batch_remedies_train_under_every_statistics_callback(norm, tmp_path):
    """Each remedy trains to the end with the default callbacks; those with running statistics
    (renorm, ghost BN) are seen by the drift, gap and PreciseBN probes."""
    run_dir = tmp_path / "run"
    metrics = train_here(*tiny_overrides(tmp_path), *norm, "data.batch_size=8",
                         "callbacks.drift.every_n_steps=2", run_dir=run_dir).metrics  # fmt: skip
    assert metrics["status"] == "finished"
    has_running_stats = norm[0] in ("norm=batch_renorm", "norm=ghost_batch")
    for key in ("stats_drift_mean_to_batch_mean", "precise_distance_max"):
        assert (key in metrics) == has_running_stats, key
    # batch vs running statistics: apart for renorm and ghost BN, exactly 0 for the others
    assert (metrics["gap_activation_distance_max"] > 0) == has_running_stats


BAD_VALUES = [  # the table: (override, exit code, what the message must name)
    ("data.batch_size=abc", 1, "data.batch_size"),  # Hydra's own type check
    ("optim.schedule=cosin", 1, "expected one of [cosine, step, constant]"),  # Hydra's enum
    ("optim.base_lr=-1", 2, "error: optim.base_lr=-1.0; allowed: a number >= 0"),
    ("model.width=0", 2, "error: model.width=0; allowed: an integer >= 1"),
    ("data.val_size=70000", 2, "error: data.val_size=70000; allowed: an integer from 1 to 59999"),
]


@pytest.mark.parametrize(("override", "code", "message"), BAD_VALUES)
def test_bad_values_through_train_py_end_in_one_message_and_a_failed_record(
    override, code, message, tmp_path
):
    """Refused before data is read (data.root is empty): normlab's refusals are one line and
    exit 2 and leave metrics.json 'failed'; Hydra's composition errors keep Hydra's exit code
    and name the key. No traceback either way."""
    result = train("data=fashion_mnist", "model=cnn", f"data.root={tmp_path / 'none'}",
                   "data.download=false", f"paths.root={tmp_path}", override,
                   check=False)  # fmt: skip
    assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr
    if code == 2:
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(message)
        (record,) = (tmp_path / "runs").glob("*/metrics.json")
        assert json.loads(record.read_text())["status"] == "failed"


def test_the_normlab_train_command_runs_train_py_from_any_folder(tmp_path):
    command = shutil.which("normlab-train")  # installed by pip install -e .
    assert command, "normlab-train is not installed: pip install -e ."
    run_dir = tmp_path / "run"
    result = subprocess.run([command, *tiny_overrides(tmp_path), f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
