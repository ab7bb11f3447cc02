"""normlab: train CNNs with in-repo normalization layers and watch how they behave."""

__version__ = "0.1.0"
