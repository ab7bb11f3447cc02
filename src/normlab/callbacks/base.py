"""The statistics callbacks' protocol: what a run reads back from each of them."""

import pytorch_lightning as pl


class RecordingCallback(pl.Callback):
    """A callback whose final values go into the run's metrics.json and HPARAMS record.

    `summary`: tag -> value, the latest values it logged that describe the whole network
    (never per-layer tags); empty until it has logged. Hooks are Lightning's public ones, each
    marked ``@override``, and no context stays open from one hook to the next.
    """

    def __init__(self) -> None:
        self.summary: dict[str, float] = {}
