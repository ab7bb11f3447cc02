"""The datasets normlab trains on, read with torchvision's own dataset classes.

Each entry knows its shape and normalization constants without touching the disk, so configs
can be checked and models built before any data is loaded.
"""

import gzip
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import check_integrity

from normlab.atomic_write import written_whole

# Where Debian's dataset-fashion-mnist package puts the original gzipped IDX files.
FASHION_MNIST_SYSTEM_COPY = Path("/usr/share/datasets/fashion-mnist")


class DataUnavailable(RuntimeError):
    """The dataset is neither on disk nor downloadable; the message says where to put it."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    load: Callable[..., Dataset]  # (root, train, download, verify_checksums) -> Dataset
    how_to_get: str
    train_size: int  # images in the official training split


# What a CIFAR pickle may name: numpy's array reconstruction and nothing else.
SAFE_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
}


class UnsafePickle(pickle.UnpicklingError):
    """A data file that names code to run."""


class ArraysOnly(pickle.Unpickler):
    """An unpickler for data files: plain containers and numpy arrays; any other global (the
    way a crafted pickle runs code) raises pickle.UnpicklingError before it is called."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_PICKLE_GLOBALS:
            raise UnsafePickle(f"it names {module}.{name}, which a data file never does")
        return super().find_class(module, name)


def unpickles_safely(path: Path) -> None:
    """Raises unless `path` unpickles to data alone (ArraysOnly); runs nothing it names."""
    with open(path, "rb") as f:
        ArraysOnly(f, encoding="latin1").load()


def without_checksums(cls: type) -> type:
    """The same torchvision CIFAR class, checking that its files exist instead of their md5."""
    return type(
        cls.__name__,
        (cls,),
        {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


def broken_cifar_file(cls: type, folder: Path, verify_checksums: bool) -> str:
    """Which of the CIFAR files is missing, fails its md5 or does not unpickle, and how."""
    files = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
    for filename, md5 in files:
        path = folder / filename
        if not path.is_file():
            return f"{path} is missing"
        if verify_checksums and not check_integrity(str(path), md5):
            return f"{path} fails its md5 check (truncated or corrupted)"
        try:
            unpickles_safely(path)
        except UnsafePickle as error:
            return f"{path} cannot be read safely: {error}"
        except Exception as error:
            return f"{path} cannot be read, truncated or corrupted ({type(error).__name__})"
    return f"{folder} could not be read"


def load_cifar(cls: type) -> Callable[..., Dataset]:
    """torchvision's CIFAR class, which unpickles its files, reached only once each file has
    passed its md5 check (torchvision's own) or, with `verify_checksums` off, once each file
    has unpickled as data alone (ArraysOnly): a planted pickle never runs."""

    def load(root: Path, train: bool, download: bool, verify_checksums: bool) -> Dataset:
        dataset_cls = cls if verify_checksums else without_checksums(cls)
        folder = Path(root) / cls.base_folder
        if not verify_checksums and folder.is_dir():
            files = [*cls.train_list, *cls.test_list, [cls.meta["filename"], None]]
            for filename, _ in files:
                path = folder / filename
                try:
                    if path.is_file():
                        unpickles_safely(path)
                except UnsafePickle as error:
                    raise DataUnavailable(f"{path} cannot be read safely: {error}") from None
                except Exception:
                    pass  # truncated or corrupted: torchvision's load below fails and says which
        try:
            return dataset_cls(str(root), train=train, download=download)
        except URLError as error:  # offline, or the server refused
            raise DataUnavailable(
                f"{cls.__name__} not found in {folder} and the download failed ({error})"
            ) from None
        except Exception:
            if not folder.exists():
                reason = f"{folder} does not exist"
                if download:
                    reason += " and the download failed"
            else:
                reason = broken_cifar_file(cls, folder, verify_checksums)
            raise DataUnavailable(f"{cls.__name__}: {reason}") from None

    return load


def stage_fashion_mnist(root: Path) -> None:
    """Decompress the Debian copy into torchvision's layout (<root>/FashionMNIST/raw/)."""
    raw = Path(root) / "FashionMNIST" / "raw"
    for gz in sorted(FASHION_MNIST_SYSTEM_COPY.glob("*-ubyte.gz")):
        target = raw / gz.name.removesuffix(".gz")
        if not target.exists():
            raw.mkdir(parents=True, exist_ok=True)
            try:  # parallel runs staging one folder at once each write a whole file
                with written_whole(target) as dst, gzip.open(gz) as src:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as error:
                raise DataUnavailable(f"{gz} cannot be decompressed ({error})") from None


def load_fashion_mnist(root: Path, train: bool, download: bool, verify_checksums: bool) -> Dataset:
    if FASHION_MNIST_SYSTEM_COPY.is_dir():
        stage_fashion_mnist(root)
    raw = Path(root) / "FashionMNIST" / "raw"
    try:
        return datasets.FashionMNIST(str(root), train=train, download=download)
    except URLError as error:
        raise DataUnavailable(
            f"FashionMNIST not found in {raw} or {FASHION_MNIST_SYSTEM_COPY}, and the download "
            f"failed ({error})"
        ) from None
    except Exception as error:
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # fmt: skip
            path = raw / name
            reader = read_image_file if "images" in name else read_label_file
            try:
                reader(str(path))
            except Exception as file_error:
                raise DataUnavailable(
                    f"FashionMNIST: {path} is missing, truncated or corrupted "
                    f"({type(file_error).__name__})"
                ) from None
        raise DataUnavailable(f"FashionMNIST in {raw} could not be read ({error})") from None


CIFAR_HOW = (
    "download {archive} from https://www.cs.toronto.edu/~kriz/cifar.html and extract it in "
    "data.root, or set data.root=/path/to/the/folder/holding/{folder}"
)

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10", 10, 3, 32,
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        load_cifar(datasets.CIFAR10),
        CIFAR_HOW.format(archive="cifar-10-python.tar.gz", folder="cifar-10-batches-py"),
        50000,
    ),
    "cifar100": DatasetSpec(
        "cifar100", 100, 3, 32,
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
        load_cifar(datasets.CIFAR100),
        CIFAR_HOW.format(archive="cifar-100-python.tar.gz", folder="cifar-100-python"),
        50000,
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", 10, 1, 28,
        (0.2860,), (0.3530,),
        load_fashion_mnist,
        "apt-get install --reinstall dataset-fashion-mnist (it puts the files in "
        "/usr/share/datasets/fashion-mnist, even where dpkg lists the package as installed), "
        "or go online so torchvision can download it",
        60000,
    ),
}  # fmt: skip


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]
