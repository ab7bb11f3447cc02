"""Packs at once against packs one after another, through train.py: a 16-job batch-2 sweep as 4
packs of 4, under hydra/launcher=packed (in this process, one pack after another) and
packed_submitit_local (each pack a submitit job, `--at-once` of them at a time).

    python scripts/bench_dispatch.py [--at-once 2] [--jobs 16] [--members 4] [overrides ...]

Prints each sweep's wall time and its training images per second (the members' train_images
summed, over the wall time). Default: cnn, Fashion-MNIST, CPU, batch 2, callbacks=none,
STEPS training steps, validation and test on one batch.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = 400
BASE = ["data=fashion_mnist", "model=cnn", "trainer=cpu", "callbacks=none", "norm=batch",
        "data.batch_size=2", "trainer.max_epochs=1", f"trainer.limit_train_batches={STEPS}",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false"]  # fmt: skip


def sweep(overrides: list[str], folder: Path) -> dict:
    command = [sys.executable, "train.py", "-m", *overrides, f"hydra.sweep.dir={folder}"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"sweep failed: {result.stderr[-2000:]}")
    records = [json.loads(p.read_text()) for p in folder.glob("*/metrics.json")]
    images = sum(r["train_images"] for r in records if r["status"] == "finished")
    return {"wall_s": round(wall, 1), "images_per_s": round(images / wall, 1),
            "finished": sum(r["status"] == "finished" for r in records)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at-once", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--members", type=int, default=4)
    args, overrides = parser.parse_known_args()
    grid = [f"seed={','.join(map(str, range(args.jobs)))}",
            f"hydra.launcher.max_members={args.members}"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            "packed (one after another)": sweep(
                [*BASE, *overrides, *grid, "hydra/launcher=packed"], Path(tmp) / "a"
            ),
            f"packed_submitit_local ({args.at_once} at once)": sweep(
                [
                    *BASE,
                    *overrides,
                    *grid,
                    "hydra/launcher=packed_submitit_local",
                    f"hydra.launcher.array_parallelism={args.at_once}",
                ],
                Path(tmp) / "b",
            ),  # fmt: skip
        }
    print("| launcher | finished | wall (s) | images/s |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['finished']} | {row['wall_s']} | {row['images_per_s']} |")


if __name__ == "__main__":
    main()
