"""The LightningDataModule: a seeded train/validation split, the official test set, augmentation."""

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from normlab.data.datasets import DATASETS, DataUnavailable, dataset_spec
from normlab.data.epoch_sampler import EpochSeededSampler, seeded_item
from normlab.data.resident import ResidentImages, ResidentLoader, images_and_labels
from normlab.errors import require


class WithTransform(Dataset):
    """A subset of `base` (a dataset of PIL images) with its own transform.

    Indexed by a position, or by an ``(position, seed)`` pair from EpochSeededSampler, which
    seeds the transform's randomness for that one image.
    """

    def __init__(self, base: Dataset, indices, transform):
        self.base, self.indices, self.transform = base, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        return seeded_item(item, self.read)

    def read(self, i: int):
        image, target = self.base[self.indices[i]]
        return self.transform(image), target


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)


def worker_start_method() -> str | None:
    """How DataLoader workers start: the platform's default, named explicitly where this
    process's default is not a standard method.

    joblib's loky workers (hydra/launcher=parallel) make "loky" their default, and a DataLoader
    cannot start its workers with it ("'Process' object has no attribute 'env'").
    """
    standard = multiprocessing.get_all_start_methods()  # the platform's default first
    current = multiprocessing.get_start_method(allow_none=True)
    return None if current in (None, *standard) else standard[0]


@dataclass
class DataSettings:
    """The data's settings (Hydra group `data`) and ImageClassificationData's: the one place
    their defaults live."""

    name: str = "cifar10"
    root: str = "data"
    batch_size: int = 128
    eval_batch_size: int | None = 512  # null: batch_size
    val_size: int = 5000  # held out of the training images
    split_seed: int = 0
    resident: bool = True
    num_workers: int | None = None
    persistent_workers: bool = True
    pin_memory: bool | None = None
    augment: bool = True
    download: bool = True
    verify_checksums: bool = True

    def __post_init__(self):
        require(self.name in DATASETS, "data.name", self.name, ", ".join(sorted(DATASETS)))
        require(self.batch_size >= 1, "data.batch_size", self.batch_size, "an integer >= 1")
        size = DATASETS[self.name].train_size
        require(
            0 < self.val_size < size,
            "data.val_size",
            self.val_size,
            f"an integer from 1 to {size - 1} ({self.name} has {size} training images)",
        )
        left = size - self.val_size
        require(self.batch_size <= left, "data.batch_size", self.batch_size,
                f"at most {left} (the {self.name} training images that data.val_size="
                f"{self.val_size} leaves: one full batch an epoch), or a smaller data.val_size",
                context=f"with data.val_size={self.val_size}")  # fmt: skip
        require(0 <= self.split_seed < 2**63, "data.split_seed", self.split_seed,
                "an integer in [0, 2**63 - 1]")  # fmt: skip
        require(self.eval_batch_size is None or self.eval_batch_size >= 1, "data.eval_batch_size",
                self.eval_batch_size, "an integer >= 1, or null (= batch_size)")  # fmt: skip
        require(self.num_workers is None or self.num_workers >= 0, "data.num_workers",
                self.num_workers, "an integer >= 0, or null (min(4, CPUs))")  # fmt: skip


class ImageClassificationData(pl.LightningDataModule):
    """CIFAR-10/100 or Fashion-MNIST through torchvision.

    Train: pad-4 random crop and horizontal flip, then per-dataset mean/std normalization;
    ``drop_last=True`` so BatchNorm never sees a batch of one; order and augmentation of each
    epoch follow from (`seed`, epoch) alone (EpochSeededSampler), so a resumed run sees the
    batches an uninterrupted one would. Validation: ``val_size`` images
    held out of the training set with a seeded permutation. Test: the official test set.

    ``resident=True`` (the default) holds each split as one uint8 tensor on the training
    device and augments whole batches (normlab.data.resident), without worker processes;
    ``resident=False`` reads image by image through torchvision's PIL transforms in
    ``num_workers`` DataLoader workers. Both draw their crops and flips from the same per-image
    seeds, in different ways, so their batches differ.
    """

    def __init__(self, name: str = DataSettings.name, seed: int = 0, **settings):
        """`settings`: DataSettings' fields (their defaults are DataSettings'), checked there;
        `seed`: the run's, which orders and augments each epoch."""
        super().__init__()
        s = DataSettings(name=name, **settings)
        self.spec = dataset_spec(s.name)
        self.root = Path(s.root)
        self.batch_size = s.batch_size
        self.eval_batch_size = s.eval_batch_size or s.batch_size
        self.val_size = s.val_size
        self.split_seed = s.split_seed
        self.resident = s.resident
        self.num_workers = default_num_workers() if s.num_workers is None else s.num_workers
        self.persistent_workers = s.persistent_workers and self.num_workers > 0
        self.pin_memory = torch.cuda.is_available() if s.pin_memory is None else s.pin_memory
        self.augment = s.augment
        self.download = s.download
        self.verify_checksums = s.verify_checksums
        self.seed = seed
        self.first_epoch = 0  # the training epoch the train loader is made for; see load_state_dict
        self.train_set = self.val_set = self.test_set = None

    def transforms(self, train: bool):
        size = self.spec.image_size
        steps = []
        if train and self.augment:
            steps += [transforms.RandomCrop(size, padding=4), transforms.RandomHorizontalFlip()]
        steps += [transforms.ToTensor(), transforms.Normalize(self.spec.mean, self.spec.std)]
        return transforms.Compose(steps)

    def load(self, train: bool) -> Dataset:
        try:
            return self.spec.load(self.root, train, self.download, self.verify_checksums)
        except DataUnavailable as error:
            raise DataUnavailable(f"{error}. To supply it: {self.spec.how_to_get}") from None

    def prepare_data(self) -> None:
        self.load(train=True)
        self.load(train=False)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        full = self.load(train=True)
        require(0 < self.val_size < len(full), "data.val_size", self.val_size,  # a smaller copy
                f"an integer from 1 to {len(full) - 1} (the training set in {self.root} has "
                f"{len(full)} images)")  # fmt: skip
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[: self.val_size].tolist(), order[self.val_size :].tolist()
        test = self.load(train=False)
        if self.resident:
            (images, labels), mean, std = images_and_labels(full), self.spec.mean, self.spec.std
            train_idx, val_idx = torch.tensor(train_idx), torch.tensor(val_idx)
            self.train_set = ResidentImages(
                images[train_idx], labels[train_idx], mean, std, self.augment
            )
            self.val_set = ResidentImages(images[val_idx], labels[val_idx], mean, std, False)
            self.test_set = ResidentImages(*images_and_labels(test), mean, std, False)
            return
        self.train_set = WithTransform(full, train_idx, self.transforms(train=True))
        self.val_set = WithTransform(full, val_idx, self.transforms(train=False))
        self.test_set = WithTransform(test, range(len(test)), self.transforms(train=False))

    def state_dict(self) -> dict:
        """The epoch Lightning will give the train sampler next (saved in every checkpoint)."""
        return {"sampler_epoch": self.trainer.fit_loop.epoch_progress.current.processed}

    def load_state_dict(self, state_dict: dict) -> None:
        """On resume, make the train loader for the epoch the run resumes at.

        Lightning creates the train loader's first iterator (configure_optimizers reads
        estimated_stepping_batches) before it restores its loops and calls set_epoch, and
        does not create another for the first resumed epoch. A worker-backed iterator draws
        indices from the sampler as it starts, so without this the first resumed epoch would
        replay epoch 0's order and augmentation. (Called before that iterator exists.)
        """
        self.first_epoch = state_dict["sampler_epoch"]

    def loader(self, dataset: Dataset, train: bool) -> DataLoader | ResidentLoader:
        """Training: this rank's shard of the epoch (EpochSeededSampler). Evaluation: this rank's
        every world_size-th image, in order, none repeated, so that over all ranks each image
        is evaluated once (the Trainer runs with use_distributed_sampler=False)."""
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        if train:  # order and augmentation from (seed, epoch): see EpochSeededSampler
            sampler = EpochSeededSampler(dataset, self.seed, world, rank)
            sampler.set_epoch(self.first_epoch)
        else:
            sampler = None if world == 1 else range(rank, len(dataset), world)
        batch_size = self.batch_size if train else self.eval_batch_size
        if isinstance(dataset, ResidentImages):
            device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
            return ResidentLoader(dataset.to(device), batch_size, sampler, drop_last=train)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            multiprocessing_context=worker_start_method() if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_set, train=False)
