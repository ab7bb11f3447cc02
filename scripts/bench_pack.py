"""Packed sweeps against solo runs: images per second summed over K runs, through train.py.

    python scripts/bench_pack.py [--members 1 2 4 8 16 32] [--batch 2 8 32 128]
        [--pack compile=true] [--json out.json] [overrides ...]

For each batch size, one `train.py -m` sweep of max(K) seeds under the basic launcher (solo runs
one after another, in one process; the first K runs' fit seconds are K solo runs' cost) and,
for each K, the same K seeds under hydra/launcher=packed (one pack of K, with the `--pack`
overrides), each sweep in its own process. Each run trains STEPS[batch] batches of one epoch
and validates and tests on 1 batch; every figure is the whole fit (metrics.json's fit_seconds:
loops, data, validation), and the sweep's wall time (start-up, data loading, test) beside
it. Memory: the peak resident set of each sweep's process (ru_maxrss), and the pack's over K.
Default: cnn, Fashion-MNIST, CPU, callbacks=none (the figure is the training; a probe costs a
member what it costs a solo run), the default threads.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = {2: 400, 8: 200, 32: 80, 128: 30}
# Validation and test on one batch each and no sanity check: in a study run at batch 2 the
# training steps outnumber the validation batches 2750 to 1; here they still dominate.
BASE = [
    "data=fashion_mnist",
    "model=cnn",
    "trainer=cpu",
    "callbacks=none",
    "trainer.max_epochs=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
# Runs train.py in this process and prints its peak resident set (KiB) as its last line.
CHILD = (
    "import atexit, resource, runpy, sys;"
    "atexit.register(lambda: print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss));"
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def sweep(overrides: list[str], sweep_dir: Path) -> dict:
    command = [
        sys.executable,
        "-c",
        CHILD,
        str(REPO / "train.py"),
        "-m",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"sweep failed: {' '.join(overrides)}\n{result.stderr[-2000:]}")
    records = [json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")]
    if not records or any(r["status"] != "finished" for r in records):
        raise SystemExit(f"not every run finished in {sweep_dir}")
    maxrss = int(result.stdout.strip().splitlines()[-1].split()[-1])
    packs = {r["packed_with"]["pack"]: r["fit_seconds"] for r in records if "packed_with" in r}
    fit = sum(packs.values()) if packs else sum(r["fit_seconds"] for r in records)
    return {
        "fit_by_seed": {r["seed"]: r["fit_seconds"] for r in records},
        "runs": len(records),
        "packs": len(packs),
        "fit": fit,
        "wall": wall,
        "maxrss_mib": maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[16])
    parser.add_argument("--batch", type=int, nargs="+", default=[2, 8, 32, 128])
    parser.add_argument("--pack", nargs="*", default=[], help="overrides for the packs only")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    print(
        "| batch | steps | K | K solo: fit s | pack: fit s | images/s solo | images/s pack | "
        "ratio (fit) | ratio (wall) | peak RSS solo / pack / pack per member (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch:
            steps = STEPS.get(batch, 50)
            overrides = [*BASE, f"data.batch_size={batch}", f"trainer.limit_train_batches={steps}"]
            most = max(args.members)
            seeds = "seed=" + ",".join(str(i) for i in range(most))
            solo = sweep([*overrides, seeds, *args.overrides], Path(tmp) / f"solo{batch}")
            for k in args.members:
                seeds = "seed=" + ",".join(str(i) for i in range(k))
                pack = sweep(
                    [*overrides, seeds, *args.overrides, *args.pack, "hydra/launcher=packed",
                     f"hydra.launcher.max_members={k}"],
                    Path(tmp) / f"pack{batch}-{k}",
                )  # fmt: skip
                solo_fit = sum(solo["fit_by_seed"][i] for i in range(k))
                solo_wall = solo["wall"] * solo_fit / solo["fit"]  # its share of the sweep
                images = k * steps * batch
                row = {"batch": batch, "steps": steps, "members": k, "solo_fit": solo_fit,
                       "pack_fit": pack["fit"], "solo_images_s": images / solo_fit,
                       "pack_images_s": images / pack["fit"], "ratio": solo_fit / pack["fit"],
                       "ratio_wall": solo_wall / pack["wall"], "solo_rss": solo["maxrss_mib"],
                       "pack_rss": pack["maxrss_mib"], "pack_rss_per_member":
                       pack["maxrss_mib"] / k}  # fmt: skip
                rows.append(row)
                print(
                    f"| {batch} | {steps} | {k} | {solo_fit:.1f} | {pack['fit']:.1f} | "
                    f"{row['solo_images_s']:.0f} | {row['pack_images_s']:.0f} | "
                    f"{row['ratio']:.2f}x | {row['ratio_wall']:.2f}x | "
                    f"{solo['maxrss_mib']:.0f} / {pack['maxrss_mib']:.0f} / "
                    f"{row['pack_rss_per_member']:.0f} |",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
