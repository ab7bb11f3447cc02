import pytest
from hypothesis import settings

from tests import configs

# Derandomized so CI is reproducible; every run still explores many shapes and options.
settings.register_profile("normlab", derandomize=True, deadline=None, max_examples=40)
settings.load_profile("normlab")


@pytest.fixture
def compose():
    """tests.configs.compose: conf/train.yaml with overrides, as train.py composes it."""
    return configs.compose


@pytest.fixture
def make_settings():
    """tests.configs.make: the checked Settings of conf/train.yaml with overrides."""
    return configs.make
