"""A pack's data: each member's training batches as its solo run draws them; evaluation shared."""

import pytorch_lightning as pl
from pytorch_lightning.utilities import CombinedLoader

from normlab.data import ImageClassificationData
from normlab.data.resident import PackedResidentLoader, ResidentLoader


class PackedData(pl.LightningDataModule):
    """K ImageClassificationData that differ only in `seed`: training yields the K members'
    batches together (member k's in its own order and augmentation, from its seed, as alone);
    validation and test sets do not depend on the seed (data.split_seed makes the split), so
    their batches are read once and given to every member."""

    def __init__(self, seeds: list[int], **settings):
        super().__init__()
        self.members = [ImageClassificationData(seed=seed, **settings) for seed in seeds]

    def prepare_data(self) -> None:
        self.members[0].prepare_data()

    def setup(self, stage: str | None = None) -> None:
        first = self.members[0]
        for member in self.members:
            member.trainer = self.trainer
        first.setup(stage)
        for member in self.members[1:]:  # one copy of the images for all
            member.train_set, member.val_set, member.test_set = (
                first.train_set,
                first.val_set,
                first.test_set,
            )

    def train_dataloader(self) -> PackedResidentLoader | CombinedLoader:
        """Resident data: one gather and augmentation for all members a step, batches
        (K, B, ...); per-image data (workers): the members' DataLoaders side by side, a list of
        K batches (Lightning sets the epoch of every sampler inside a CombinedLoader)."""
        loaders = [m.train_dataloader() for m in self.members]
        if all(isinstance(loader, ResidentLoader) for loader in loaders):
            return PackedResidentLoader(loaders)
        return CombinedLoader(loaders, mode="min_size")

    def val_dataloader(self):
        return self.members[0].val_dataloader()

    def test_dataloader(self):
        return self.members[0].test_dataloader()

    def state_dict(self) -> dict:
        """ImageClassificationData's (the epoch the train samplers are given next): the same
        for every member."""
        return self.members[0].state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        for member in self.members:
            member.load_state_dict(state_dict)
