"""The Hydra entry point of training: `python train.py` and the `normlab-train` command (from
anywhere in an editable install) both call `train`. It imports only what training needs
(normlab-report is normlab.report.__main__:main)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from normlab.run.fit import run_and_record

CONF = Path(__file__).resolve().parents[2] / "conf"  # the repository's conf/


@hydra.main(config_path=str(CONF), config_name="train", version_base="1.3")
def train(cfg: DictConfig) -> float:
    """python train.py, as a command: the same config tree, the same run."""
    return run_and_record(cfg)
