"""Train a CNN with a normlab norm: python train.py norm=group data.batch_size=8 (see README)."""

import hydra
from omegaconf import DictConfig

from normlab.train import run_and_record


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return run_and_record(cfg)


if __name__ == "__main__":
    main()
