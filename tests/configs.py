"""Composing conf/ as train.py does: the one helper every test uses (also the `compose` and
`make_settings` fixtures of conftest.py)."""

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from normlab.config import Settings, load_settings

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides=(), hydra: bool = False) -> DictConfig:
    """conf/train.yaml with these overrides (and Hydra's own config when `hydra`)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides), return_hydra_config=hydra)


def make(overrides=()) -> Settings:
    """The checked Settings of conf/train.yaml with these overrides."""
    return load_settings(compose(overrides))
