"""Datasets (torchvision's own classes) and the LightningDataModule that serves them."""

from normlab.data.datamodule import ImageClassificationData
from normlab.data.datasets import DATASETS, DatasetSpec, DataUnavailable, dataset_spec

__all__ = ["DATASETS", "DataUnavailable", "DatasetSpec", "ImageClassificationData", "dataset_spec"]
