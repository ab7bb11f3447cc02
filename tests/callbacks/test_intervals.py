"""Curves in short runs: drift and train/loss_step log about 20 points an epoch by default (drift
no more often than every 8th step)."""

from normlab.callbacks.settings import CallbacksSettings, statistics_callbacks
from normlab.config import load_settings
from normlab.run.identity import RunIdentity
from tests.configs import compose
from tests.events import scalars
from tests.runs import tiny_overrides, train_here


def test_drift_interval_scales_to_the_epoch_unless_set():
    drift = {n: statistics_callbacks(CallbacksSettings(), None, n)[0].every_n_steps
             for n in (5, 80, 400, 1000, 7500)}  # fmt: skip
    assert drift == {5: 8, 80: 8, 400: 20, 1000: 50, 7500: 50}
    set_by_hand = CallbacksSettings()
    set_by_hand.drift.every_n_steps = 7
    assert statistics_callbacks(set_by_hand, None, 80)[0].every_n_steps == 7


def test_a_short_run_draws_drift_and_loss_curves_and_records_the_interval(tmp_path):
    """40 steps an epoch with the defaults (no interval set): a loss point every 2 steps and a
    drift point every 8th, not one in the whole run; the run's identity holds the interval."""
    overrides = [o for o in tiny_overrides(tmp_path) if o != "trainer=debug"]
    overrides += ["trainer=cpu", "trainer.limit_train_batches=40", "trainer.limit_val_batches=2",
                  "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "norm=batch",
                  "data.batch_size=4"]  # fmt: skip
    run_dir = tmp_path / "run"
    train_here(*overrides, run_dir=run_dir)
    values = scalars(run_dir)
    steps = len(values["train/loss_step"])
    assert steps >= 20 and len(values["z_stats/drift_mean_to_batch_mean"]) == 5
    identity = RunIdentity.of(load_settings(compose(overrides)))
    assert identity.settings["callbacks.drift.every_n_steps"] == 8


def test_precise_bn_samples_at_most_the_images_a_limited_epoch_trains_on(tmp_path):
    """A smoke run (20 batches of 8) estimates PreciseBN's statistics from an eighth of its 160
    training images, not 4,096, and its validation probes see as many: its probes stay small
    beside its training. A full epoch keeps 4,096 and every validation image."""
    from normlab.callbacks.population import PopulationStats
    from normlab.callbacks.train_eval_gap import TrainEvalGap
    from normlab.run.job import Member
    from normlab.run.trainer import make_trainer

    def population(overrides) -> PopulationStats:
        s = load_settings(compose(["data.batch_size=8", *overrides]))
        fit = make_trainer([Member(s, tmp_path)], tmp_path)
        (callback,) = [c for c in fit.statistics[0] if isinstance(c, PopulationStats)]
        (gap,) = [c for c in fit.statistics[0] if isinstance(c, TrainEvalGap)]
        assert gap.max_samples == callback.val_samples
        return callback

    smoke = population(["trainer.limit_train_batches=20"])
    assert (smoke.num_samples, smoke.val_samples) == (20, 20)
    assert population(["trainer.limit_train_batches=1000"]).num_samples == 1000  # 8,000 images
    full = population([])  # CIFAR-10's 45,000 training images: an eighth is above both defaults
    assert full.num_samples == 4096 and full.val_samples >= 5000  # data.val_size: all of them
