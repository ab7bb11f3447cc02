import os

import pytest
import torch
from hypothesis import settings

from tests import configs

# Derandomized so CI is reproducible; every run still explores many shapes and options.
settings.register_profile("normlab", derandomize=True, deadline=None, max_examples=40)
settings.load_profile("normlab")

# Under pytest-xdist (the README's `pytest` runs -n auto), the cores are shared out among the
# workers, for their training subprocesses too: workers of a thread per core each would spin
# their OpenMP threads against each other (a 1,600-step batch-2 test took 6x as long).
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    threads = max(1, (os.cpu_count() or 1) // workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


@pytest.fixture
def compose():
    """tests.configs.compose: conf/train.yaml with overrides, as train.py composes it."""
    return configs.compose


@pytest.fixture
def make_settings():
    """tests.configs.make: the checked Settings of conf/train.yaml with overrides."""
    return configs.make


def pytest_collection_modifyitems(items):
    """The slow tests first (a stable sort): pytest-xdist's loadfile hands their files out
    first and the short files fill the workers in after, so no long file starts last and runs
    alone at the end of the suite."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
