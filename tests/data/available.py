import pytest

from normlab.data.datasets import FASHION_MNIST_SYSTEM_COPY

needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST_SYSTEM_COPY.is_dir(),
    reason=f"no {FASHION_MNIST_SYSTEM_COPY}: apt-get install dataset-fashion-mnist",
)
