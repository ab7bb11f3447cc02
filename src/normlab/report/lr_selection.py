"""Each cell's best learning rate: among the cells that differ only in lr, the lr with the lowest
mean validation error over the seeds that every one of those cells ran.

Only the shared seeds count, so seeds run later at the chosen lr alone (a study's confirmation
runs) do not change the choice. Test error plays no part: it stays the unselected metric that
a study's contrasts compare at the chosen lrs.
"""

import csv
import io
import statistics
from dataclasses import dataclass

from normlab.report.contrasts import cell_name, per_seed
from normlab.report.plots import lr_factor
from normlab.report.tables import group_by, varying

SELECTED_ON = "val_error"
COLUMNS = ["cell", "lr", "lr_factor", "val_error", "seeds", "lrs", "at_edge"]


@dataclass
class BestLr:
    """The chosen cell, its lr, and its mean val error over `seeds` (shared by every lr tried)."""

    cell: str
    lr: float
    factor: float | None
    val_error: float
    seeds: list
    lrs: list[float]

    @property
    def at_edge(self) -> bool:
        """The lowest or highest lr tried: a better one may lie outside the grid."""
        return self.lr in (min(self.lrs), max(self.lrs))


def best_lrs(table: list[dict]) -> list[BestLr]:
    """One BestLr for each group of two or more cells that differ only in lr."""
    keys = [k for k in group_by() if k != "lr"]
    groups: dict[tuple, list[dict]] = {}
    for entry in table:
        if entry.get("lr") is not None:
            groups.setdefault(tuple(str(entry.get(k)) for k in keys), []).append(entry)
    chosen, shown = [], varying(table)
    for cells in groups.values():
        values = [per_seed(c, SELECTED_ON) for c in cells]
        shared = set.intersection(*(set(v) for v in values))
        if len(cells) < 2 or not shared:
            continue
        seeds = sorted(shared, key=str)
        means = [statistics.fmean(v[s] for s in seeds) for v in values]
        best = min(range(len(cells)), key=means.__getitem__)
        cell = cells[best]
        chosen.append(BestLr(cell_name(cell, shown), cell["lr"], lr_factor(cell), means[best],
                             seeds, sorted(c["lr"] for c in cells)))  # fmt: skip
    return chosen


def markdown(rows: list[BestLr]) -> str:
    if not rows:
        return ""
    lines = ["", f"Best lr of each cell (lowest mean {SELECTED_ON.replace('_', ' ')} over the "
             "seeds every lr ran; * = the lowest or highest lr tried):", "",
             "| cell at its best lr | lr / linear rule | val error % | seeds | lrs tried |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        factor = "–" if r.factor is None else f"{r.factor:g}×"
        lines.append(f"| {r.cell} | {factor}{' *' if r.at_edge else ''} | {r.val_error:.2f} | "
                     f"{', '.join(map(str, r.seeds))} | {len(r.lrs)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def csv_text(rows: list[BestLr]) -> str:
    """best_lr.csv's text."""
    f = io.StringIO()
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.cell, r.lr, r.factor, f"{r.val_error:.6g}", " ".join(map(str, r.seeds)),
                         " ".join(f"{lr:g}" for lr in r.lrs), r.at_edge])  # fmt: skip
    return f.getvalue()
