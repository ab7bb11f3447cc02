"""Aggregated rows -> PNG figures in the style of the Group Normalization paper's Figure 1:
titled with the dataset, model, epochs, seeds and lr rule; 95% CI error bars (t, over seeds),
readable names and n in the legend, each line offset a little so that none hides another."""

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from normlab.norms.registry import NORMS, report_columns
from normlab.optim import OptimSettings
from normlab.report.tables import describe, unequal_training, varying

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLE_WIDTH = 90  # characters a title line holds at fontsize 8 across a default figure

BATCH = "batch size (log\N{SUBSCRIPT TWO} scale)"
GAP = "train-mode minus eval-mode\nval accuracy (points)"  # two lines: one is clipped
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
    ("error_vs_lr.png", "val_error", "validation error (%)", "lr_factor",
     "lr / the linear rule's (log\N{SUBSCRIPT TWO} scale)"),
    ("test_error_vs_lr.png", "test_error", "test error (%)", "lr_factor",
     "lr / the linear rule's (log\N{SUBSCRIPT TWO} scale)"),
    # the cells that ran for several max_epochs: does a longer budget change the comparison?
    ("error_vs_epochs.png", "val_error", "validation error (%)", "max_epochs",
     "epochs (log\N{SUBSCRIPT TWO} scale)"),
    ("test_error_vs_epochs.png", "test_error", "test error (%)", "max_epochs",
     "epochs (log\N{SUBSCRIPT TWO} scale)"),
]  # fmt: skip
LINEAR_RULE = OptimSettings().base_lr / OptimSettings().base_batch_size  # lr per image
Y_LABELS = {"val_error": "validation error (%)", "test_error": "test error (%)", "gap_points": GAP}


def figures() -> list[tuple[str, str, str, str, str]]:
    return BATCH_FIGURES + [
        (name, y, Y_LABELS[y], column.option, column.axis)
        for column in report_columns()
        for name, y in column.figures
    ]


def series(table: list[dict], y: str, x: str) -> dict[str, list[dict]]:
    """One line per norm (and dataset/model when a sweep mixes them; and lr / the linear rule's,
    and the epochs, when the sweep varies them; and the batch size where x is the lr or the
    epochs): its rows sorted by x. A line may hold one x value: a cell run at one setting."""
    settings = {(e["dataset"], e["model"]) for e in table}
    factors = {e.get("lr_factor") for e in table}
    epochs = "max_epochs" in varying(table)
    lines: dict[str, list[dict]] = {}
    for e in table:
        if e.get(x) is None or math.isnan(e.get(y, math.nan)):
            continue
        name = readable(e, x)
        if x in ("lr_factor", "max_epochs"):  # one line per norm and batch size
            name += f" @ batch {e['batch_size']}"
        if x != "lr_factor" and len(factors) > 1 and e.get("lr_factor") is not None:
            name += f", lr {e['lr_factor']:g}× the rule's"
        if epochs and x != "max_epochs":
            name += f", {e['max_epochs']} epochs"
        name = name if len(settings) == 1 else f"{name} ({e['dataset']}, {e['model']})"
        lines.setdefault(name, []).append(e)
    return {k: sorted(v, key=lambda e: e[x]) for k, v in lines.items()}


def readable(entry: dict, x: str | None = None) -> str:
    """A legend's name for a cell: GroupNorm (G = 8), GroupNorm + WS, BatchNorm (PreciseBN at
    test), Batch Renorm (r_max=1.5, d_max=0.5)."""
    norm = entry["norm"]
    text = (NORMS[norm].title or norm) if norm in NORMS else str(norm)
    if entry.get("num_groups") is not None and x != "num_groups":  # not where G is the axis
        text += f" (G = {entry['num_groups']})"
    text += " + WS" if entry.get("weight_standardization") else ""
    text += f" ({entry['options']})" if entry.get("options") else ""
    return text + (" (PreciseBN at test)" if entry.get("population_at_test") else "")


def lr_factor(entry: dict) -> float | None:
    """The cell's lr over the linear rule's (0.1·B/128, OptimSettings' defaults)."""
    lr, batch = entry.get("lr"), entry.get("batch_size")
    return None if lr is None or not batch else round(lr / (LINEAR_RULE * batch), 6)


def lr_rule(rows: list[dict]) -> str:
    """'lr = 0.1·B/128' when every run's lr is one base lr times its batch over 128."""
    bases = {round(r["lr"] * 128 / e["batch_size"], 6) for e in rows for r in e.get("runs", [])
             if isinstance(r.get("lr"), int | float)}  # fmt: skip
    if len(bases) == 1:
        return f"lr = {bases.pop():g}·B/128"
    return f"lr·128/B ∈ {{{', '.join(f'{b:g}' for b in sorted(bases))}}}" if bases else ""


def n_label(rows: list[dict]) -> str:
    ns = sorted({e["n"] for e in rows})
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"


MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)))


def ci_half_width(entry: dict, y: str) -> float:
    low, high = entry.get(y + "_ci", (math.nan, math.nan))
    return 0.0 if math.isnan(low) else (high - low) / 2


def dot_chart(table: list[dict], out: Path) -> Path:
    """error_by_cell.png: each cell's validation and test error with its 95% CI, one row per
    cell: the figure of a study that compares norms at one setting (norms_at_32)."""
    cells = sorted(table, key=lambda e: e["test_error"])
    fig, ax = plt.subplots(figsize=(5.6, 0.5 * len(cells) + 1.6), dpi=150)
    for offset, (y, marker, name) in ((-0.12, ("val_error", "o", "validation")),
                                      (0.12, ("test_error", "s", "test"))):  # fmt: skip
        rows = [i + offset for i in range(len(cells))]
        ax.errorbar([e[y] for e in cells], rows, xerr=[ci_half_width(e, y) for e in cells],
                    marker=marker, linestyle="none", capsize=3, label=name)  # fmt: skip
    ax.set_yticks(range(len(cells)), [f"{readable(e)} ({n_label([e])})" for e in cells])
    ax.invert_yaxis()
    ax.set_xlabel("error (%), mean ± 95% CI (t, n seeds)")
    rule = lr_rule(cells)
    ax.set_title(f"{describe(cells)}{chr(10) + rule if rule else ''}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "error_by_cell.png")
    plt.close(fig)
    return out / "error_by_cell.png"


def panels(lines: dict[str, list[dict]], x: str) -> list[tuple[str, dict[str, list[dict]]]]:
    """A figure's panels, (title, lines): error against lr gets one panel per batch size (its
    lines named without the batch), so that each batch's norms are compared on their own axis;
    every other figure is one panel."""
    if x != "lr_factor":
        return [("", lines)]
    by_batch: dict[int, dict[str, list[dict]]] = {}
    for name, rows in lines.items():
        batch = rows[0]["batch_size"]
        by_batch.setdefault(batch, {})[name.replace(f" @ batch {batch}", "")] = rows
    return [(f"batch {b}", by_batch[b]) for b in sorted(by_batch)]


def segments(rows: list[dict], x: str, grid: list) -> list[list[dict]]:
    """A line's runs of neighbouring x values on the figure's grid (every x some line has): a
    line is not drawn across x values it did not run (ResNet-20 at 32 and 2 beside the CNN's
    32, 16, 8, 4, 2 is two points, not a segment from 32 to 2)."""
    parts: list[list[dict]] = []
    for e in rows:
        if parts and grid.index(e[x]) == grid.index(parts[-1][-1][x]) + 1:
            parts[-1].append(e)
        else:
            parts.append([e])
    return parts


def draw(ax, lines: dict[str, list[dict]], x: str, y: str, styles: list[str], grid: list) -> None:
    """Each line with its 95% CI bars, side by side (a small offset along the log axis) so that
    no line hides another; a line keeps its marker and style (its index in `styles`) in every
    panel, and joins only neighbouring x values of `grid`."""
    ordered = sorted(lines.items(), key=lambda item: styles.index(item[0]))
    for i, (line, rows) in enumerate(ordered):
        shift = 2 ** (0.06 * (i - (len(ordered) - 1) / 2))
        k = styles.index(line)
        for j, part in enumerate(segments(rows, x, grid)):
            ax.errorbar([e[x] * shift for e in part], [e[y] for e in part],
                        yerr=[ci_half_width(e, y) for e in part],
                        marker=MARKERS[k % len(MARKERS)], linestyle=LINESTYLES[k % len(LINESTYLES)],
                        color=f"C{k % 10}", capsize=3,
                        label=f"{line} ({n_label(rows)})" if j == 0 else None)  # fmt: skip
    ax.set_xscale("log", base=2)
    ticks = sorted({e[x] for rows in lines.values() for e in rows})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    if x == "batch_size" or any(c.large_first for c in report_columns() if c.option == x):
        ax.invert_xaxis()  # as the GN paper's Figure 1: large batches on the left
    if y == "gap_points":
        ax.axhline(0, color="black", linewidth=0.8, linestyle=":")  # the reference: no gap
    ax.grid(alpha=0.3)


@dataclass(frozen=True)
class Figure:
    """A figure the report has data for: its file name, and how to draw it into a folder."""

    name: str
    draw: Callable[[Path], None]


def plan(table: list[dict]) -> list[Figure]:
    """Each figure that the sweep has data for (at least two x values for some line), with every
    line, and a cell run at one x value as a point (Batch Renorm at one batch size); the epochs
    figure draws only the cells run for several epochs. For a sweep at one batch size, also the
    dot chart of its cells. Names are known without drawing (`normlab-report --check`)."""
    planned = []
    for name, y, ylabel, x, xlabel in figures():
        lines = series([{**e, "lr_factor": lr_factor(e)} for e in table], y, x)
        # a point is one cell; several cells at one x (Ghost BN's virtual batches, all at SGD
        # batch 128) belong to the figure of their own option; the epochs figure shows the
        # cells run for several budgets
        spans = {k: len({e[x] for e in v}) > 1 for k, v in lines.items()}
        lines = {k: v for k, v in lines.items()
                 if spans[k] or (len(v) == 1 and x != "max_epochs")}  # fmt: skip
        if any(spans[k] for k in lines):
            planned.append(Figure(name, _line_figure(name, lines, x, y, xlabel, ylabel)))
    if len(table) >= 2 and len({e["batch_size"] for e in table}) == 1:
        planned.append(Figure("error_by_cell.png", lambda out: dot_chart(table, out)))
    return planned


def _line_figure(name, lines, x, y, xlabel, ylabel) -> Callable[[Path], None]:
    def draw_into(out: Path) -> None:
        shown = [e for rows in lines.values() for e in rows]
        facets = panels(lines, x)
        styles = sorted({line for _, facet in facets for line in facet})
        fig, axes = plt.subplots(1, len(facets), figsize=(5.6 + 2.4 * (len(facets) - 1), 4.0),
                                 dpi=150, squeeze=False)  # fmt: skip
        grid = sorted({e[x] for e in shown})
        for ax, (panel, facet) in zip(axes[0], facets, strict=True):
            draw(ax, facet, x, y, styles, grid)
            ax.set_xlabel(xlabel if len(facets) == 1 else xlabel.replace(" (log", "\n(log"))
            if panel:
                ax.set_title(panel, fontsize=9)
        axes[0][0].set_ylabel(f"{ylabel}, mean ± 95% CI")
        rule = lr_rule(shown)
        title = textwrap.fill(f"{describe(shown)}{'; ' + rule if rule else ''}", TITLE_WIDTH)
        fig.suptitle(f"{title}\nbars: 95% CI of the mean (t, n seeds)", fontsize=8)
        flagged = unequal_training(shown)
        if flagged:
            fig.text(0.01, 0.01, f"unequal training: {flagged[0]:.0f} to {flagged[1]:.0f} "
                     "images per run", fontsize=7, color="red")  # fmt: skip
        if len(styles) > 6:  # beside the axes, where it hides no point
            fig.set_figwidth(fig.get_figwidth() + 2.8)
            axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        else:
            axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)

    return draw_into


def plot(table: list[dict], out: Path) -> list[Path]:
    """Draw every planned figure into `out`."""
    written = []
    for figure in plan(table):
        figure.draw(out)
        written.append(out / figure.name)
    return written
