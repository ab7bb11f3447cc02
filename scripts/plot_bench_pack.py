"""Plot scripts/bench_pack.py's --json rows: images/s summed over K runs against K, one line per
batch size and kind of run (solo, eager pack, compiled pack).

    python scripts/plot_bench_pack.py eager.json compiled.json --labels eager compiled \
        --out experiments/perf/pack_scaling.png
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=Path, nargs="+")
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    labels = args.labels or [p.stem for p in args.rows]
    figure, axes = plt.subplots(figsize=(6, 4))
    batches = sorted({r["batch"] for p in args.rows for r in json.loads(p.read_text())})
    colors = dict(zip(batches, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=False))
    for i, (path, label) in enumerate(zip(args.rows, labels, strict=True)):
        rows = json.loads(path.read_text())
        for batch in batches:
            mine = sorted((r for r in rows if r["batch"] == batch), key=lambda r: r["members"])
            if not mine:
                continue
            k = [r["members"] for r in mine]
            if i == 0:
                axes.plot(k, [r["solo_images_s"] for r in mine], ":", color=colors[batch],
                          label=f"batch {batch}, K solo runs")  # fmt: skip
            style = ["-o", "--s", "-.^"][i % 3]
            axes.plot(k, [r["pack_images_s"] for r in mine], style, color=colors[batch],
                      label=f"batch {batch}, one pack of K ({label})")  # fmt: skip
    axes.set_xscale("log", base=2)
    axes.set_xlabel("runs K")
    axes.set_ylabel("training images/s, summed over the K runs")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
