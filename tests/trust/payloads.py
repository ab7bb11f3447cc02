"""Files a hostile user could plant: pickles that run code (they touch a marker file) when
anything unpickles them unsafely."""

import pickle
from pathlib import Path

import torch


class Touch:
    """Unpickled unsafely, creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant_pickle(path: Path, marker: Path) -> Path:
    """A plain pickle that runs code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"global_step": 3, "payload": Touch(marker)}))
    return path


def plant_torch_save(path: Path, marker: Path) -> Path:
    """A torch.save'd checkpoint (zip format) whose pickle runs code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": 3, "state_dict": {}, "payload": Touch(marker)}, path)
    return path
