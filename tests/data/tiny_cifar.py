"""Write a tiny CIFAR copy in torchvision's on-disk format (the cifar-*-python pickles)."""

import pickle
from pathlib import Path

import numpy as np


def write_tiny_cifar10(root: Path, per_batch: int = 40, test: int = 40, seed: int = 0) -> Path:
    """data_batch_1..5, test_batch and batches.meta under root/cifar-10-batches-py.

    Images carry a class-dependent colour so that a few steps of training can learn something.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str) -> None:
        labels = rng.integers(0, 10, n)
        base = (labels[:, None] * 25).astype(np.int64)
        data = np.clip(base + rng.integers(0, 40, (n, 3072)), 0, 255).astype(np.uint8)
        entry = {"batch_label": name, "labels": labels.tolist(), "data": data,
                 "filenames": [f"{name}_{i}.png" for i in range(n)]}  # fmt: skip
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)

    for i in range(1, 6):
        batch(per_batch, f"data_batch_{i}")
    batch(test, "test_batch")
    classes = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]  # fmt: skip
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes, "num_cases_per_batch": per_batch}, f)
    return Path(root)


def tiny_datamodule(root: Path, **options):
    """ImageClassificationData on a fresh tiny copy under root: 70 training images, set up."""
    from normlab.data import ImageClassificationData

    write_tiny_cifar10(root, per_batch=20, test=30)
    defaults = dict(root=root, batch_size=8, eval_batch_size=None, val_size=30, resident=False,
                    num_workers=0, verify_checksums=False, download=False)  # fmt: skip
    data = ImageClassificationData(**{**defaults, **options})
    data.setup()
    return data
