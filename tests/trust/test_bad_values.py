"""Values a careless user gives: each is refused in one line, before any data is read."""

import json

import pytest
import torch

from normlab.callbacks.settings import statistics_callbacks
from normlab.config import ConfigError, run_name
from normlab.run.job import Member
from normlab.run.sizes import probe_images
from normlab.run.trainer import make_trainer
from tests.runs import train
from tests.test_config import make

REFUSED = [
    (["trainer.precision=7"], "trainer.precision=7; allowed: auto, 32-true"),
    (["trainer.devices=0"], "trainer.devices=0; allowed: auto, -1 (all), an integer >= 1"),
    (["trainer.max_steps=-5"], "trainer.max_steps=-5; allowed: an integer >= 1, or -1"),
    (["trainer.limit_train_batches=-1"], "trainer.limit_train_batches=-1; allowed: an integer"),
    (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0; allowed: an integer"),
    (["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches=1.5; allowed: an integer"),
    (["trainer.num_nodes=0"], "trainer.num_nodes=0; allowed: an integer >= 1"),
    (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch=0; allowed: "),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1; allowed: an integer >= 1 when "
                                "trainer.max_steps is -1"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0; allowed: an integer >= 1, "
                                      "or null"),
    (["trainer.num_sanity_val_steps=-5"], "trainer.num_sanity_val_steps=-5; allowed: "),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1.0; allowed: a number >= 0"),
    (["trainer.deterministic=maybe"], "trainer.deterministic=maybe; allowed: true, false, warn"),
    (["data.split_seed=99999999999999999999"], "data.split_seed=99999999999999999999; allowed"),
    (["callbacks.checkpoint.monitor=val/nope"],
     "callbacks.checkpoint.monitor=val/nope; allowed: val/acc, val/loss, train/acc, train/loss"),
    (["data=fashion_mnist", "data.val_size=59990", "data.batch_size=64"],
     "data.batch_size=64 with data.val_size=59990; allowed: at most 10"),
    (["data=fashion_mnist", "data.batch_size=60000"],
     "data.batch_size=60000 with data.val_size=5000; allowed: at most 55000"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), REFUSED)
def test_each_bad_value_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as info:
        make(overrides)
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


def test_max_epochs_minus_1_is_fine_with_a_step_limit():
    assert make(["trainer.max_epochs=-1", "trainer.max_steps=100"]).trainer.max_steps == 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_one_line(tmp_path):
    s = make(["trainer.accelerator=gpu"])
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=gpu; allowed: auto or cpu"):
        make_trainer([Member(s, tmp_path)], tmp_path)


def test_lightnings_own_refusals_become_one_line_config_errors(tmp_path):
    s = make(["trainer.strategy=no_such_strategy"])
    with pytest.raises(ConfigError) as info:
        make_trainer([Member(s, tmp_path)], tmp_path)
    assert str(info.value).startswith("trainer: Lightning refuses these settings (")
    assert "no_such_strategy" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_a_bad_value_is_refused_before_any_data_is_read_with_exit_code_2(tmp_path):
    """No dataset at data.root and no download: the refusal comes first, nothing trained."""
    out = tmp_path / "out"
    result = train(f"data.root={tmp_path / 'none'}", "data.download=false", f"paths.root={out}",
                   "trainer.precision=7", check=False)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: trainer.precision=7;")
    (run_dir,) = (out / "runs").iterdir()
    assert run_dir.name == run_name("data.download=false,trainer.precision=7")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"
    assert not (run_dir / "checkpoints").exists()


def test_the_probes_see_the_images_val_acc_sees():
    s = make(["trainer.limit_val_batches=2", "data.eval_batch_size=16"])
    assert probe_images(s) == 32
    assert probe_images(make(["trainer.limit_val_batches=0.5"])) == 2500
    assert probe_images(make()) is None
    _, gap, population = statistics_callbacks(s.callbacks, probe_images(s))
    assert gap.max_samples == 32 and population.val_samples == 32
    _, gap, population = statistics_callbacks(s.callbacks, None)
    assert gap.max_samples is None and population.val_samples is None


def test_the_logging_interval_scales_with_the_epoch_unless_set():
    s = make(["data=fashion_mnist", "data.batch_size=128"])  # 429 steps an epoch
    assert s.trainer.logging_interval(429) == 21
    assert s.trainer.logging_interval(80) == 4  # a short run still draws a curve
    assert s.trainer.logging_interval(100_000) == 50  # never more often than Lightning's 50
    assert make(["trainer.log_every_n_steps=7"]).trainer.logging_interval(429) == 7
