"""The datamodule on a tiny CIFAR-10 copy in torchvision's format, and on real Fashion-MNIST."""

import multiprocessing
from urllib.error import URLError

import pytest
import torch

from normlab.data import DataUnavailable, ImageClassificationData, datasets
from tests.data.available import needs_fashion_mnist
from tests.data.tiny_cifar import tiny_datamodule, write_tiny_cifar10


def test_split_sizes_and_drop_last(tmp_path):
    data = tiny_datamodule(tmp_path)
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (70, 30, 30)
    loader = data.train_dataloader()
    assert loader.drop_last and len(loader) == 70 // 8
    assert all(len(y) == 8 for _, y in loader)
    x, _ = next(iter(data.val_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32


def test_split_is_seeded_and_disjoint(tmp_path):
    a, b = tiny_datamodule(tmp_path), tiny_datamodule(tmp_path)
    c = tiny_datamodule(tmp_path, split_seed=1)
    assert a.val_set.indices == b.val_set.indices != c.val_set.indices
    assert not set(a.val_set.indices) & set(a.train_set.indices)


def test_normalized_with_dataset_statistics_and_augmented_only_in_training(tmp_path):
    data = tiny_datamodule(tmp_path)
    image, _ = data.val_set.base[data.val_set.indices[0]]
    mean = torch.tensor(data.spec.mean).view(3, 1, 1)
    std = torch.tensor(data.spec.std).view(3, 1, 1)
    expected = (torch.tensor(list(image.getdata())).T.reshape(3, 32, 32) / 255 - mean) / std
    torch.testing.assert_close(data.val_set[0][0], expected)
    torch.manual_seed(0)
    assert not torch.equal(data.train_set[0][0], data.train_set[0][0])  # random crop and flip
    assert torch.equal(data.val_set[0][0], data.val_set[0][0])


def test_checksums_are_verified_by_default(tmp_path):
    with pytest.raises(DataUnavailable, match=r"data_batch_1 fails its md5 check.*To supply it"):
        tiny_datamodule(tmp_path, verify_checksums=True)


def test_offline_without_a_copy_says_where_and_how(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    data = ImageClassificationData(root=tmp_path / "none", download=True)
    with pytest.raises(DataUnavailable) as info:
        data.prepare_data()
    message = str(info.value)
    assert str(tmp_path / "none" / "cifar-10-batches-py") in message
    assert "download failed" in message and "data.root=" in message and "\n" not in message


@needs_fashion_mnist
def test_fashion_mnist_from_the_debian_copy(tmp_path):
    data = ImageClassificationData("fashion_mnist", root=tmp_path, batch_size=64, val_size=5000,
                                   num_workers=0, download=False)  # fmt: skip
    data.setup()
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (55000, 5000, 10000)
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (64, 1, 28, 28) and y.max() < 10
    assert abs(x.mean().item()) < 0.3  # normalized with Fashion-MNIST's own mean and std


def test_a_truncated_batch_file_is_named(tmp_path):
    write_tiny_cifar10(tmp_path)
    broken = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    broken.write_bytes(broken.read_bytes()[:500])
    data = ImageClassificationData(root=tmp_path, download=False, verify_checksums=False)
    with pytest.raises(DataUnavailable, match=f"{broken} cannot be read, truncated or corrupted"):
        data.prepare_data()


@needs_fashion_mnist
def test_a_truncated_fashion_mnist_file_is_named(tmp_path):
    data = ImageClassificationData("fashion_mnist", root=tmp_path, download=False)
    data.prepare_data()  # stages whole files from the Debian copy
    broken = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:100_000])
    with pytest.raises(DataUnavailable, match=f"{broken} is missing, truncated or corrupted"):
        ImageClassificationData("fashion_mnist", root=tmp_path, download=False).prepare_data()


def prepare_fashion_mnist(root) -> None:
    ImageClassificationData("fashion_mnist", root=root, download=False).prepare_data()


@pytest.mark.slow  # spawns processes: the full suite runs it
@needs_fashion_mnist
def test_parallel_runs_stage_fashion_mnist_into_one_folder_at_once(tmp_path):
    """A parallel sweep's first runs all find the folder empty and stage it together."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.map(prepare_fashion_mnist, [tmp_path] * 4)  # raises what a stager raised
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    ]  # fmt: skip
    data = ImageClassificationData("fashion_mnist", root=tmp_path, val_size=5000, download=False)
    data.setup()
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (55000, 5000, 10000)


def test_a_corrupt_system_copy_is_named_and_leaves_nothing_staged(tmp_path, monkeypatch):
    copy = tmp_path / "debian"
    copy.mkdir()
    (copy / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_COPY", copy)
    with pytest.raises(DataUnavailable, match="t10k-labels-idx1-ubyte.gz cannot be decompressed"):
        datasets.stage_fashion_mnist(tmp_path / "data")
    assert list((tmp_path / "data" / "FashionMNIST" / "raw").iterdir()) == []


def first_batch_labels_with_workers(root) -> list[int]:
    data = tiny_datamodule(root, num_workers=2)
    return next(iter(data.train_dataloader()))[1].tolist()


@pytest.mark.slow  # spawns processes: the full suite runs it
def test_workers_start_inside_a_joblib_job_as_in_the_main_process(tmp_path):
    """hydra/launcher=parallel runs each job in a loky worker, whose default start method is
    loky's own; a DataLoader could not start its workers with it."""
    from joblib import Parallel, delayed

    (in_job,) = Parallel(n_jobs=2)(delayed(first_batch_labels_with_workers)(tmp_path) for _ in [0])
    assert in_job == first_batch_labels_with_workers(tmp_path)
