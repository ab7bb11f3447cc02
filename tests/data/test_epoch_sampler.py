"""Each epoch's training order and augmentation follow from (seed, epoch) alone."""

import torch

from normlab.data.epoch_sampler import EpochSeededSampler
from tests.data.tiny_cifar import tiny_datamodule


def epoch_batches(loader, epoch: int) -> list:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def assert_same_batches(first: list, second: list) -> None:
    assert len(first) == len(second) > 0
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_an_epoch_is_the_same_from_a_fresh_loader_and_with_any_workers(tmp_path):
    data = tiny_datamodule(tmp_path)
    straight = data.train_dataloader()
    epoch_batches(straight, 0)
    epoch_1 = epoch_batches(straight, 1)
    # A resumed run builds a new loader and starts at epoch 1, its global RNG elsewhere.
    torch.manual_seed(12345)
    assert_same_batches(epoch_1, epoch_batches(tiny_datamodule(tmp_path).train_dataloader(), 1))
    # Persistent workers carry their RNG from epoch to epoch; the batches do not depend on it.
    workers = tiny_datamodule(tmp_path, num_workers=2).train_dataloader()
    assert workers.persistent_workers
    epoch_batches(workers, 0)
    assert_same_batches(epoch_1, epoch_batches(workers, 1))


def test_epochs_and_seeds_differ_in_order_and_augmentation(tmp_path):
    data = tiny_datamodule(tmp_path)
    n = len(data.train_set)

    def pairs(seed: int, epoch: int) -> list[tuple[int, int]]:
        sampler = EpochSeededSampler(data.train_set, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    e0, e1, other_seed = pairs(0, 0), pairs(0, 1), pairs(1, 0)
    for epoch in (e0, e1, other_seed):
        assert sorted(i for i, _ in epoch) == list(range(n))  # every image once
    orders = [[i for i, _ in e0], [i for i, _ in e1], [i for i, _ in other_seed]]
    assert orders[0] != orders[1] and orders[2] not in orders[:2]
    # Seed 1's epoch 0 is not seed 0's epoch 1 (DistributedSampler's seed + epoch would be).
    assert orders[2] != [i for i, _ in pairs(0, 1)] and orders[1] != [i for i, _ in pairs(1, 0)]
    assert e0 == pairs(0, 0)
    (index, seed_0), seed_1 = e0[0], dict(e1)[e0[0][0]]
    assert seed_0 != seed_1
    image = data.train_set[(index, seed_0)][0]
    assert torch.equal(image, data.train_set[(index, seed_0)][0])  # the seed fixes the crop
    assert not torch.equal(image, data.train_set[(index, seed_1)][0])  # another epoch, another


def test_ranks_split_an_epoch_between_them(tmp_path):
    data = tiny_datamodule(tmp_path)  # 70 images
    one = list(EpochSeededSampler(data.train_set, 0))
    for world in (2, 3):  # 70 = 2 x 35; 3 ranks pad to 72 with the epoch's first 2 images
        ranks = [list(EpochSeededSampler(data.train_set, 0, world, r)) for r in range(world)]
        padded = one + one[: -len(one) % world]
        assert [ranks[k % world][k // world] for k in range(len(padded))] == padded
