"""Training order and augmentation as a function of (seed, epoch): what makes resumes exact."""

import numpy as np
import torch
from torch.utils.data import DistributedSampler


class EpochSeededSampler(DistributedSampler):
    """A shuffling sampler that yields ``(index, sample_seed)`` pairs instead of indices.

    Epoch e draws, from ``numpy.random.default_rng([seed, e])``, a permutation of the dataset
    and one seed per image; `seeded_item` seeds that image's augmentation with it. An epoch's
    batches are then a function of (seed, e) alone: the same after a resume from any
    checkpoint, and with any ``num_workers``, persistent or not. (DistributedSampler's own
    permutation is seeded by seed + e, which would give seed s + 1 the orders of seed s shifted
    by one epoch.) Over several ranks the split is DistributedSampler's: pad by repeating to a
    multiple of the world size, then every ``num_replicas``-th from ``rank``. It is a
    DistributedSampler so that Lightning calls ``set_epoch`` and keeps it under DDP.
    """

    def __init__(self, dataset, seed: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's indices for the epoch, in order, and each one's seed (int64 arrays)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.dataset)
        order = np.resize(rng.permutation(n), self.total_size)  # cyclic padding
        sample_seeds = rng.integers(2**63, size=n)
        mine = order[self.rank : self.total_size : self.num_replicas]
        return mine, sample_seeds[mine]

    def __iter__(self):
        indices, seeds = self.draws()
        yield from zip(indices.tolist(), seeds.tolist(), strict=True)


def seeded_item(item, read):
    """`read(index)` for a plain index; for an ``(index, seed)`` pair from EpochSeededSampler,
    `read(index)` with torch's global CPU generator seeded by `seed` and restored afterwards.

    (The generator itself rather than torch.manual_seed, which also seeds every accelerator
    backend and costs ~80 us an image on this CPU against ~2 us.)
    """
    if not isinstance(item, tuple):
        return read(item)
    index, seed = item
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        return read(index)
    finally:
        generator.set_state(state)
