"""The statistics callbacks' protocol: what a run reads back from each of them."""

import functools
import time

import pytorch_lightning as pl


class RecordingCallback(pl.Callback):
    """A callback whose final values go into the run's metrics.json and HPARAMS record.

    `summary`: tag -> value, the latest values it logged that describe the whole network
    (never per-layer tags); empty until it has logged. `probe_seconds`: the time spent in its
    `timed` hooks so far (the console's epoch line shows it). Hooks are Lightning's public
    ones, each marked ``@override``, and no context stays open from one hook to the next.
    """

    def __init__(self) -> None:
        self.summary: dict[str, float] = {}
        self.probe_seconds = 0.0


def timed(hook):
    """A RecordingCallback hook whose duration adds to its `probe_seconds`."""

    @functools.wraps(hook)
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return hook(self, *args, **kwargs)
        finally:
            self.probe_seconds += time.perf_counter() - start

    return wrapper
