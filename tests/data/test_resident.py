"""Tensor-resident data: batched augmentation is the per-image one, epochs follow (seed, epoch)."""

import torch
from torchvision.transforms import functional as TF

from normlab.data.resident import PAD, augment, augmentation_draws
from tests.data.available import needs_fashion_mnist
from tests.data.tiny_cifar import tiny_datamodule


def per_image_reference(data, position: int, top: int, left: int, flip: bool) -> torch.Tensor:
    """torchvision's own functions on the PIL image: pad, crop, flip, ToTensor, Normalize."""
    image, _ = data.train_set_pil.base[data.train_set_pil.indices[position]]
    image = TF.crop(TF.pad(image, PAD), top, left, image.height, image.width)
    if flip:
        image = TF.hflip(image)
    return TF.normalize(TF.to_tensor(image), data.spec.mean, data.spec.std)


def both_paths(tmp_path):
    resident = tiny_datamodule(tmp_path, resident=True)
    resident.train_set_pil = tiny_datamodule(tmp_path).train_set  # same split, PIL images
    return resident


def test_a_batch_is_the_per_image_augmentation_with_the_same_draws(tmp_path):
    data = both_paths(tmp_path)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(3)
    indices, seeds = loader.sampler.draws()
    x, y = next(iter(loader))
    top, left, flip = augmentation_draws(torch.from_numpy(seeds[: len(y)]))
    assert flip.any() and not flip.all() and len(set(top.tolist())) > 1
    for b in range(len(y)):
        expected = per_image_reference(data, indices[b], int(top[b]), int(left[b]), bool(flip[b]))
        assert torch.equal(x[b], expected), b  # bit for bit
        assert y[b] == data.train_set.labels[indices[b]]


def test_draws_cover_every_offset_and_flip_half_the_time():
    seeds = torch.randint(2**62, (20_000,), generator=torch.Generator().manual_seed(0))
    top, left, flip = augmentation_draws(seeds)
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=2 * PAD + 1)
        assert len(counts) == 2 * PAD + 1 and counts.min() > 0.8 * len(seeds) / len(counts)
    assert abs(flip.float().mean().item() - 0.5) < 0.02


def test_augment_crops_inside_the_zero_padding():
    images = torch.arange(2 * 1 * 3 * 3, dtype=torch.uint8).view(2, 1, 3, 3) + 1
    out = augment(images, torch.tensor([0, 4]), torch.tensor([4, 4]), torch.tensor([False, True]))
    assert torch.equal(out[0], torch.zeros(1, 3, 3, dtype=torch.uint8))  # all padding
    assert torch.equal(out[1, 0, 0], images[1, 0, 0].flip(0))  # the image's first row, mirrored


def test_evaluation_batches_equal_the_per_image_path(tmp_path):
    resident, per_image = tiny_datamodule(tmp_path, resident=True), tiny_datamodule(tmp_path)
    for a, b in zip(resident.val_dataloader(), per_image.val_dataloader(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_an_epoch_depends_on_seed_and_epoch_only(tmp_path):
    def epoch(loader, e):
        loader.sampler.set_epoch(e)
        return [torch.cat([x.flatten(), y.float()]) for x, y in loader]

    straight = tiny_datamodule(tmp_path, resident=True).train_dataloader()
    first, second = epoch(straight, 0), epoch(straight, 1)
    torch.manual_seed(123)  # a resumed process: its global RNG elsewhere
    resumed = epoch(tiny_datamodule(tmp_path, resident=True).train_dataloader(), 1)
    assert all(torch.equal(a, b) for a, b in zip(second, resumed, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@needs_fashion_mnist
def test_fashion_mnist_resident(tmp_path):
    from normlab.data import ImageClassificationData

    data = ImageClassificationData("fashion_mnist", root=tmp_path, batch_size=64, download=False)
    data.setup()
    assert data.train_set.images.shape == (55000, 1, 28, 28)
    assert data.train_set.images.dtype == torch.uint8
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32 and y.max() < 10
