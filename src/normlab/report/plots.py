"""Aggregated rows -> PNG figures in the style of the Group Normalization paper's Figure 1."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (file, y column, y label, x column, x label)
FIGURES = [
    ("error_vs_batch.png", "val_error", "validation error (%)", "batch_size", "batch size"),
    ("gap_vs_batch.png", "gap_acc", "train-mode minus eval-mode val accuracy", "batch_size",
     "batch size"),
    ("drift_vs_batch.png", "drift_to_batch", "running stats to batch stats (std units)",
     "batch_size", "batch size"),
    ("error_vs_norm_batch.png", "val_error", "validation error (%)", "virtual_batch_size",
     "normalization batch (SGD batch fixed)"),
    ("gap_vs_norm_batch.png", "gap_acc", "train-mode minus eval-mode val accuracy",
     "virtual_batch_size", "normalization batch (SGD batch fixed)"),
    ("error_vs_groups.png", "val_error", "validation error (%)", "num_groups", "groups G"),
    ("error_vs_group_size.png", "val_error", "validation error (%)", "group_size",
     "channels per group"),
]  # fmt: skip


def series(table: list[dict], y: str, x: str) -> dict[str, list[tuple]]:
    """One line per norm (and dataset/model when a sweep mixes them): sorted (x, mean, std)."""
    settings = {(e["dataset"], e["model"]) for e in table}
    lines: dict[str, list[tuple]] = {}
    for e in table:
        if e.get(x) is None or math.isnan(e.get(y, math.nan)):
            continue
        label = e["norm"] if len(settings) == 1 else f"{e['norm']} ({e['dataset']}, {e['model']})"
        lines.setdefault(label, []).append((e[x], e[y], e[y + "_std"]))
    return {k: sorted(v) for k, v in lines.items() if len({p[0] for p in v}) > 1}


def plot(table: list[dict], out: Path) -> list[Path]:
    """Write each figure that the sweep has data for (at least two x values for some line)."""
    written = []
    for name, y, ylabel, x, xlabel in FIGURES:
        lines = series(table, y, x)
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=150)
        for label, points in sorted(lines.items()):
            xs, means, stds = zip(*points, strict=True)
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ticks = sorted({p[0] for points in lines.values() for p in points})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        if x in ("batch_size", "virtual_batch_size"):
            ax.invert_xaxis()  # as the GN paper's Figure 1: large batches on the left
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        written.append(out / name)
    return written
