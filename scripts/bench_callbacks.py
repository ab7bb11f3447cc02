"""What the statistics callbacks cost: time inside their hooks, per epoch, against the epoch.

    python scripts/bench_callbacks.py [--epochs 2] [overrides ...]

Trains (default: Fashion-MNIST, the small CNN, BatchNorm, CPU) once with callbacks=default while
timing every statistics-callback hook, and once with callbacks=none. Prints, per epoch, the
seconds spent in the callbacks and their share of that epoch, plus both runs' fit times. Hook
time is the direct measure; the difference of fit times is noisy at the level of a few percent.
Goal: the default callbacks add at most 5% to an epoch's time.
"""

import argparse
import functools
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

from hydra import compose, initialize_config_dir

from normlab import callbacks
from normlab.train import run

REPO = Path(__file__).resolve().parents[1]
HOOKS = ("on_train_start", "on_train_batch_start", "on_train_batch_end",
         "on_validation_epoch_end", "on_train_epoch_end")  # fmt: skip


def time_hooks(spent: dict[int, float]) -> None:
    """Wrap every statistics-callback hook to add its duration to spent[current epoch]."""
    for cls in (callbacks.RunningStatsDrift, callbacks.TrainEvalGap, callbacks.PopulationStats):
        for name in HOOKS:
            if name not in cls.__dict__:
                continue
            hook = getattr(cls, name)

            def timed(self, trainer, *args, _hook=hook):
                start = time.perf_counter()
                result = _hook(self, trainer, *args)
                epoch = trainer.current_epoch
                spent[epoch] = spent.get(epoch, 0.0) + time.perf_counter() - start
                return result

            setattr(cls, name, functools.wraps(hook)(timed))


def fit(overrides: list[str], root: Path) -> float:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.root={root}"])
    run(cfg)
    return json.loads((root / "runs" / "direct" / "metrics.json").read_text())["fit_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args, extra = parser.parse_known_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    base = ["data=fashion_mnist", "model=cnn", "norm=batch", "trainer=cpu",
            f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false",
            *extra]  # fmt: skip
    spent: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain = fit([*base, "callbacks=none"], Path(tmp) / "none")
        time_hooks(spent)
        with_callbacks = fit([*base, "callbacks=default"], Path(tmp) / "default")
    epoch = with_callbacks / args.epochs
    print(" ".join(base))
    print("| epoch | seconds in statistics callbacks | share of the epoch |")
    print("|---|---|---|")
    for e in sorted(spent):
        print(f"| {e} | {spent[e]:.2f} | {100 * spent[e] / (epoch - spent[e]):.1f}% |")
    print(f"fit seconds: callbacks=none {plain:.1f}, callbacks=default {with_callbacks:.1f} "
          f"({100 * (with_callbacks / plain - 1):+.1f}%)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
