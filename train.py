"""Train a CNN with a normlab norm: python train.py norm=group data.batch_size=8 (see README)."""

import sys

import hydra
from omegaconf import DictConfig

from normlab.config import ConfigError
from normlab.data import DataUnavailable
from normlab.train import run


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        return run(cfg)
    except (ConfigError, DataUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
