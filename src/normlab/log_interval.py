"""How often a curve gets a point, and how much a probe may read: both scaled to the epoch."""

PROBE_SHARE = 8
"""A statistics probe does at most 1/PROBE_SHARE of the work of the training it measures: it
reads at most an eighth of the images an epoch trains on, and drift measures at most every
eighth step. Full epochs (Fashion-MNIST's 55,000 or CIFAR's 45,000 training images) stay above
the probes' defaults (5,000 validation images, PreciseBN's 4,096, drift every 50 steps or ~20
times an epoch), so the bound shrinks only short runs (trainer.limit_train_batches)."""


def log_interval(every: int | None, steps_per_epoch: int) -> int:
    """`every`, or with None: about 20 points an epoch, at most every 50 steps (a short run
    still draws a curve; a long one logs no more often than Lightning's 50)."""
    return every if every is not None else max(1, min(50, steps_per_epoch // 20))


def drift_interval(every: int | None, steps_per_epoch: int) -> int:
    """Drift's measuring interval: `every`, or with None log_interval's, but no more often than
    every PROBE_SHARE-th step."""
    return every if every is not None else max(PROBE_SHARE, log_interval(None, steps_per_epoch))


def probe_budget(train_images: int | None) -> int | None:
    """The images a probe may read: 1/PROBE_SHARE of an epoch's `train_images` (None: no bound)."""
    return None if train_images is None else max(1, train_images // PROBE_SHARE)
