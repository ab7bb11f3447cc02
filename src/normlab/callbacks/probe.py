"""Fixed batches at the training batch size: what the statistics callbacks probe."""

import itertools
import weakref

import torch
from torch.utils.data import DataLoader, Dataset


def fixed_batches(
    dataset: Dataset, batch_size: int, max_samples: int | None, shuffle: bool = False, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to `max_samples` samples of `dataset` in full batches of `batch_size` (no batch of 1).

    In dataset order, or shuffled; read through the dataset's own transforms (augmentation
    included) with their randomness seeded by `seed`, under a forked RNG: reading never moves
    the global random state, so a run with probes trains exactly as one without.
    """
    with torch.random.fork_rng(devices=[]):  # the CPU generator only, restored on exit
        torch.default_generator.manual_seed(seed)  # not torch.manual_seed: it reseeds CUDA too
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(
            dataset, batch_size, shuffle=shuffle, generator=generator, drop_last=True
        )
        limit = None if max_samples is None else max(1, max_samples // batch_size)
        return [(x, y) for x, y in itertools.islice(loader, limit)]


_CACHE: "weakref.WeakKeyDictionary[Dataset, dict]" = weakref.WeakKeyDictionary()


def cached_batches(dataset: Dataset, batch_size: int, max_samples: int | None, **kwargs):
    """`fixed_batches`, read once per dataset and arguments and shared by every callback."""
    per_dataset = _CACHE.setdefault(dataset, {})
    key = (batch_size, max_samples, tuple(sorted(kwargs.items())))
    if key not in per_dataset:
        per_dataset[key] = fixed_batches(dataset, batch_size, max_samples, **kwargs)
    return per_dataset[key]


def loader_of(loaders) -> DataLoader:
    """The loader behind a Lightning dataloader attribute (a loader or a list of them)."""
    return loaders[0] if isinstance(loaders, list | tuple) else loaders


def dataset_of(loaders) -> Dataset:
    return loader_of(loaders).dataset
