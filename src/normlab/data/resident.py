"""Tensor-resident data: a whole split as one uint8 tensor, augmented a batch at a time.

No worker processes and no per-image PIL work: the images live on the training device, and
each batch is gathered, padded, cropped, flipped and normalized with a few tensor operations.
The order and the augmentation come from EpochSeededSampler's (index, seed) pairs, so an epoch
is a function of (seed, epoch) as on the per-image path, and resumes are exact.
"""

import torch
from torch import Tensor
from torch.utils.data import Dataset

from normlab.data.epoch_sampler import EpochSeededSampler

PAD = 4  # the crop's zero padding, as RandomCrop(size, padding=4)


def augmentation_draws(seeds: Tensor, pad: int = PAD) -> tuple[Tensor, Tensor, Tensor]:
    """(top, left, flip) of each image, read from its seed's bits: top and left uniform in
    [0, 2·pad], flip with probability 1/2 (the seeds are uniform 63-bit integers)."""
    span = 2 * pad + 1
    return seeds % span, (seeds // span) % span, (seeds // span**2) % 2 == 1


def augment(images: Tensor, top: Tensor, left: Tensor, flip: Tensor, pad: int = PAD) -> Tensor:
    """Per image b: zero-pad by `pad`, crop the original size at (top[b], left[b]), mirror the
    width when flip[b]. uint8 (B, C, H, W) in and out."""
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = (top[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = left[:, None] + torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def to_float(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """ToTensor then Normalize, in their order of operations: (x / 255 - mean) / std."""
    return images.float().div(255).sub(mean).div(std)


def images_and_labels(dataset) -> tuple[Tensor, Tensor]:
    """A torchvision CIFAR or (Fashion-)MNIST dataset's whole split: uint8 (N, C, H, W) images
    and int64 labels, read from its ``data`` and ``targets`` without decoding any image."""
    data = torch.as_tensor(dataset.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64)


class ResidentImages(Dataset):
    """Images (uint8, N×C×H×W) and labels of one split, with per-dataset normalization and,
    for training, the crop-and-flip augmentation.

    Indexed like the per-image datasets (a position, or an (index, seed) pair), so that the
    statistics callbacks read it the same way; `batch` does the same for many images at once.
    """

    def __init__(self, images: Tensor, labels: Tensor, mean, std, augment: bool):
        self.images, self.labels, self.augment = images, labels, augment
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, device=images.device).view(shape)
        self.std = torch.tensor(std, device=images.device).view(shape)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "ResidentImages":
        """Moves the tensors to `device`, in place (once: the split stays there)."""
        for name, value in vars(self).items():
            if torch.is_tensor(value):
                setattr(self, name, value.to(device))
        return self

    def batch(self, index: Tensor, seeds: Tensor | None = None) -> tuple[Tensor, Tensor]:
        images = self.images[index]
        if self.augment:
            if seeds is None:  # no sampler: draws from torch's generator, as torchvision's
                seeds = torch.randint(2**62, (len(index),))
            images = augment(images, *augmentation_draws(seeds.to(images.device)))
        return to_float(images, self.mean, self.std), self.labels[index]

    def __getitem__(self, item):
        index, seed = item if isinstance(item, tuple) else (item, None)
        seeds = None if seed is None else torch.tensor([seed])
        x, y = self.batch(torch.tensor([index], device=self.images.device), seeds)
        return x[0], y[0]


class ResidentLoader:
    """Batches of a ResidentImages in the sampler's order (an EpochSeededSampler, or a range of
    positions; in order without one), yielded like a DataLoader's; Lightning calls
    ``sampler.set_epoch`` on it as on a DataLoader."""

    def __init__(
        self, dataset: ResidentImages, batch_size: int, sampler=None, drop_last: bool = False
    ):
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler: EpochSeededSampler | range | None = sampler
        self.batch_sampler = None  # Lightning looks for one beside a sampler, as on a DataLoader

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        device = self.dataset.images.device
        if self.sampler is None:
            index, seeds = torch.arange(len(self.dataset), device=device), None
        elif isinstance(self.sampler, range):  # a rank's evaluation shard, in order
            index, seeds = torch.tensor(self.sampler, device=device), None
        else:
            index, seeds = (torch.from_numpy(a).to(device) for a in self.sampler.draws())
        for b in range(len(self)):
            part = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield self.dataset.batch(index[part], None if seeds is None else seeds[part])


class PackedResidentLoader:
    """The members' ResidentLoaders of one training set, read together: each step gathers and
    augments every member's batch (its own sampler's indices and seeds) in one call, and yields
    (x, y) of shape (K, B, ...), (K, B). Each image's crop and flip come from its own seed,
    so member k's batch is the one its ResidentLoader yields alone. Lightning's set_epoch on
    `sampler` reaches every member's sampler."""

    def __init__(self, loaders: list[ResidentLoader]):
        self.loaders = loaders
        self.dataset, self.batch_size = loaders[0].dataset, loaders[0].batch_size
        self.sampler = EverySampler([loader.sampler for loader in loaders])
        self.batch_sampler = None

    def __len__(self) -> int:
        return min(len(loader) for loader in self.loaders)

    def __iter__(self):
        device = self.dataset.images.device
        draws = [loader.sampler.draws() for loader in self.loaders]
        index = torch.stack([torch.from_numpy(i) for i, _ in draws]).to(device)
        seeds = torch.stack([torch.from_numpy(s) for _, s in draws]).to(device)
        k, b = len(self.loaders), self.batch_size
        for step in range(len(self)):
            part = slice(step * b, (step + 1) * b)
            x, y = self.dataset.batch(index[:, part].reshape(-1), seeds[:, part].reshape(-1))
            yield x.view(k, b, *x.shape[1:]), y.view(k, b)


class EverySampler:
    """set_epoch for several samplers at once."""

    def __init__(self, samplers):
        self.samplers = samplers

    def set_epoch(self, epoch: int) -> None:
        for sampler in self.samplers:
            sampler.set_epoch(epoch)
