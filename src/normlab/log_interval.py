"""How often a curve gets a point: a set number of steps, or one scaled to the epoch."""


def log_interval(every: int | None, steps_per_epoch: int) -> int:
    """`every`, or with None: about 20 points an epoch, at most every 50 steps (a short run
    still draws a curve; a long one logs no more often than Lightning's 50)."""
    return every if every is not None else max(1, min(50, steps_per_epoch // 20))
