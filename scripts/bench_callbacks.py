"""What the statistics callbacks cost a run: the fit time with callbacks=default against
callbacks=none (the headline), and the time inside their hooks, per epoch.

    python scripts/bench_callbacks.py [--epochs 2] [--repeats 2] [overrides ...]

Trains (default: Fashion-MNIST, the small CNN, BatchNorm, CPU) with callbacks=none and with
callbacks=default, `--repeats` times, interleaved so that machine drift hits both alike. The
headline is the difference of the median fit times: everything the callbacks cost, including
what runs outside their hooks (the drift callback's per-layer moments inside measured training
steps). The hook table splits out the time spent in the hooks themselves. Goal: <= 5%.
"""

import argparse
import functools
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from hydra import compose, initialize_config_dir

from normlab import callbacks
from normlab.run.fit import run

REPO = Path(__file__).resolve().parents[1]
HOOKS = ("on_train_start", "on_train_batch_start", "on_train_batch_end",
         "on_validation_epoch_start", "on_validation_epoch_end", "on_train_epoch_end")  # fmt: skip


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
    return run(cfg).metrics["fit_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args, extra = parser.parse_known_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    base = ["data=fashion_mnist", "model=cnn", "norm=batch", "trainer=cpu",
            f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false",
            *extra]  # fmt: skip
    spent: dict[int, float] = {}
    time_hooks(spent)
    fits: dict[str, list[float]] = {"none": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for choice in fits:
                fits[choice].append(fit([*base, f"callbacks={choice}"], Path(tmp) / f"{choice}{r}"))
    plain, with_callbacks = (statistics.median(fits[c]) for c in ("none", "default"))
    print(" ".join(base))
    print(
        f"fit seconds (median of {args.repeats}): callbacks=none {plain:.1f}, "
        f"callbacks=default {with_callbacks:.1f}: {100 * (with_callbacks / plain - 1):+.1f}%"
    )
    print("each run: " + ", ".join(f"{c} {t:.1f}" for c in fits for t in fits[c]))
    epoch = with_callbacks / args.epochs
    print("| epoch | seconds in statistics-callback hooks (per run) | share of the epoch |")
    print("|---|---|---|")
    for e in sorted(spent):
        per_run = spent[e] / args.repeats
        print(f"| {e} | {per_run:.2f} | {100 * per_run / (epoch - per_run):.1f}% |")


if __name__ == "__main__":
    sys.exit(main())
