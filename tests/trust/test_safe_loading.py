"""A planted pickle never runs: as a stray checkpoint, as ckpt_path, as a CIFAR batch."""

import pytest
import torch

from normlab.data import DataUnavailable
from normlab.data.datasets import DATASETS
from normlab.errors import ConfigError
from normlab.run.resume import AtomicCheckpointIO, checkpoint_to_resume, read_checkpoint
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.trust.payloads import plant_pickle, plant_torch_save

PLANTS = [plant_pickle, plant_torch_save]


@pytest.mark.parametrize("plant", PLANTS)
def test_a_stray_checkpoint_in_the_run_folder_is_never_read(tmp_path, plant):
    marker = tmp_path / "ran"
    plant(tmp_path / "checkpoints" / "aaa_stray.ckpt", marker)
    assert checkpoint_to_resume(tmp_path, None) is None
    assert not marker.exists()


@pytest.mark.parametrize("plant", PLANTS)
def test_a_payload_named_last_ckpt_is_passed_over_in_one_line(tmp_path, plant, caplog):
    marker = tmp_path / "ran"
    plant(tmp_path / "checkpoints" / "last.ckpt", marker)
    AtomicCheckpointIO().save_checkpoint({"global_step": 2}, tmp_path / "checkpoints" / "best.ckpt")
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(tmp_path, None) == str(tmp_path / "checkpoints" / "best.ckpt")
    assert not marker.exists()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "last.ckpt cannot be read" in warning and "\n" not in warning


@pytest.mark.parametrize("plant", PLANTS)
def test_a_payload_as_ckpt_path_is_refused_in_one_line_naming_it(tmp_path, plant):
    marker = tmp_path / "ran"
    evil = plant(tmp_path / "evil.ckpt", marker)
    with pytest.raises(ConfigError) as error:
        checkpoint_to_resume(tmp_path, str(evil))
    assert str(error.value).startswith(f"ckpt_path={evil} cannot be read (")
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_safe_loading_holds_when_the_environment_turns_the_default_off(tmp_path, monkeypatch):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD changes only loads that do not say weights_only."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    with pytest.raises(Exception):  # noqa: B017 (any refusal will do; running it is the failure)
        read_checkpoint(plant_torch_save(tmp_path / "evil.ckpt", marker))
    assert not marker.exists()


def test_a_checkpoint_normlab_writes_loads_safely(tmp_path):
    state = {"global_step": 5, "state_dict": {"w": torch.ones(3)}, "hparams": {"lr": 0.1}}
    AtomicCheckpointIO().save_checkpoint(state, tmp_path / "c.ckpt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "c.ckpt") == []
    assert read_checkpoint(tmp_path / "c.ckpt")["global_step"] == 5


def test_a_planted_cifar_batch_never_runs_without_checksums(tmp_path):
    root = write_tiny_cifar10(tmp_path / "data")
    marker = tmp_path / "ran"
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    plant_pickle(batch, marker)
    load = DATASETS["cifar10"].load
    with pytest.raises(DataUnavailable) as error:
        load(root, train=True, download=False, verify_checksums=False)
    assert not marker.exists()
    assert str(error.value).startswith(f"{batch} cannot be read safely: it names ")
    assert "\n" not in str(error.value)


def test_a_planted_cifar_batch_fails_its_md5_before_it_is_read(tmp_path):
    root = write_tiny_cifar10(tmp_path / "data")
    marker = tmp_path / "ran"
    plant_pickle(root / "cifar-10-batches-py" / "data_batch_1", marker)
    with pytest.raises(DataUnavailable, match="fails its md5 check"):
        DATASETS["cifar10"].load(root, train=True, download=False, verify_checksums=True)
    assert not marker.exists()


def test_the_tiny_cifar_copy_still_loads_without_checksums(tmp_path):
    root = write_tiny_cifar10(tmp_path / "data", per_batch=4, test=4)
    dataset = DATASETS["cifar10"].load(root, train=True, download=False, verify_checksums=False)
    assert len(dataset) == 20
