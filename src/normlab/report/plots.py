"""Aggregated rows -> PNG figures in the style of the Group Normalization paper's Figure 1:
titled with the dataset, model, epochs and seeds; mean ± std error bars with n in the legend."""

import math
from pathlib import Path

import matplotlib

from normlab.norms.registry import report_columns
from normlab.report.tables import describe, label, unequal_training

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BATCH = "batch size (log\N{SUBSCRIPT TWO} scale)"
GAP = "train-mode minus eval-mode val accuracy (points)"
# (file, y column, y label, x column, x label): against the batch size, then against each
# norm's swept options (NormSpec.columns)
BATCH_FIGURES = [
    ("error_vs_batch.png", "val_error", "validation error (%)", "batch_size", BATCH),
    ("gap_vs_batch.png", "gap_points", GAP, "batch_size", BATCH),
    # the figure where BN tested with population statistics (PreciseBN at test) differs from BN:
    # its validation, during training, uses the EMA statistics as BN's does
    ("test_error_vs_batch.png", "test_error", "test error (%)", "batch_size", BATCH),
    ("drift_vs_batch.png", "drift_to_batch", "running mean to batch mean (running-std units)",
     "batch_size", BATCH),
]  # fmt: skip
Y_LABELS = {"val_error": "validation error (%)", "test_error": "test error (%)", "gap_points": GAP}


def figures() -> list[tuple[str, str, str, str, str]]:
    return BATCH_FIGURES + [
        (name, y, Y_LABELS[y], column.option, column.axis)
        for column in report_columns()
        for name, y in column.figures
    ]


def series(table: list[dict], y: str, x: str) -> dict[str, list[dict]]:
    """One line per norm (and dataset/model when a sweep mixes them): its rows sorted by x."""
    settings = {(e["dataset"], e["model"]) for e in table}
    lines: dict[str, list[dict]] = {}
    for e in table:
        if e.get(x) is None or math.isnan(e.get(y, math.nan)):
            continue
        name = label(e) if len(settings) == 1 else f"{label(e)} ({e['dataset']}, {e['model']})"
        lines.setdefault(name, []).append(e)
    return {k: sorted(v, key=lambda e: e[x]) for k, v in lines.items()
            if len({e[x] for e in v}) > 1}  # fmt: skip


def n_label(rows: list[dict]) -> str:
    ns = sorted({e["n"] for e in rows})
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"


def plot(table: list[dict], out: Path) -> list[Path]:
    """Write each figure that the sweep has data for (at least two x values for some line)."""
    written = []
    for name, y, ylabel, x, xlabel in figures():
        lines = series(table, y, x)
        if not lines:
            continue
        shown = [e for rows in lines.values() for e in rows]
        fig, ax = plt.subplots(figsize=(5.6, 4.0), dpi=150)
        for line, rows in sorted(lines.items()):
            xs = [e[x] for e in rows]
            ax.errorbar(xs, [e[y] for e in rows], yerr=[e[y + "_std"] for e in rows], marker="o",
                        capsize=3, label=f"{line} ({n_label(rows)})")  # fmt: skip
        ax.set_xscale("log", base=2)
        ticks = sorted({e[x] for e in shown})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        if x == "batch_size" or any(c.large_first for c in report_columns() if c.option == x):
            ax.invert_xaxis()  # as the GN paper's Figure 1: large batches on the left
        if y == "gap_points":
            ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(describe(shown), fontsize=8)
        flagged = unequal_training(shown)
        if flagged:
            fig.text(0.01, 0.01, f"unequal training: {flagged[0]:.0f} to {flagged[1]:.0f} "
                     "images per run", fontsize=7, color="red")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        written.append(out / name)
    return written
