"""Sweep folder -> summary.csv, summary.md and plots. Reads run folders; never trains.

python -m normlab.report <sweep dir> [more sweep dirs] [--out DIR]
python -m normlab.report experiments/<study> [--check]   (normlab.report.study)
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from normlab.report import contrasts as declared_contrasts
from normlab.report import lr_selection
from normlab.report.collect import collect
from normlab.report.plots import Figure, plan, plot
from normlab.report.statistics import Contrast
from normlab.report.tables import aggregate, csv_text, markdown


@dataclass
class Report:
    """What the report makes of a sweep, before anything is written: each table file's text,
    the figures it has data for, the declared contrasts and the runs."""

    tables: dict[str, str]
    figures: list[Figure]
    contrasts: list[Contrast]
    rows: list[dict]
    best: list[lr_selection.BestLr]


def compute(sweep: Path, contrasts: Path | None = None, beside: Sequence[Path] = ()) -> Report:
    """The report of `sweep` (and the `beside` folders' runs as cells of their own), with the
    contrasts file `contrasts` (default: the sweep's contrasts.yaml, if any)."""
    sweep = Path(sweep)
    for folder in (sweep, *beside):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no sweep folder at {folder}")
    rows = collect(sweep, *beside)
    table = aggregate(rows)
    contrasts = Path(contrasts) if contrasts else sweep / "contrasts.yaml"
    declared = (
        declared_contrasts.compute(table, declared_contrasts.read(contrasts))
        if contrasts.is_file()
        else []
    )
    best = lr_selection.best_lrs(table)
    text = markdown(rows, table) + lr_selection.markdown(best)
    tables = {"summary.csv": csv_text(rows),
              "summary.md": text + declared_contrasts.markdown(declared)}  # fmt: skip
    if best:
        tables["best_lr.csv"] = lr_selection.csv_text(best)
    if declared:
        tables["contrasts.csv"] = declared_contrasts.csv_text(declared)
    return Report(tables, plan(table), declared, rows, best)


def write(report: Report, out: Path) -> list[Path]:
    """Write the report's tables and draw its figures into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in report.tables.items():
        (out / name).write_text(text, newline="")
        written.append(out / name)
    for figure in report.figures:
        figure.draw(out)
        written.append(out / figure.name)
    return written


def summarize(
    sweep: Path,
    out: Path | None = None,
    contrasts: Path | None = None,
    beside: Sequence[Path] = (),
) -> list[Path]:
    """Write summary.csv, summary.md and the PNGs (into `out`, default the sweep folder); where
    cells differ only in lr, best_lr.csv and its section of summary.md (lr_selection); with a
    contrasts file (default: the sweep's contrasts.yaml, if any), contrasts.csv and the
    contrasts section of summary.md. Runs under the `beside` folders (another study's, that
    this one compares against) join the sweep's as cells of their own."""
    return write(compute(sweep, contrasts, beside), Path(out or sweep))


__all__ = ["Report", "aggregate", "collect", "compute", "markdown", "plot", "summarize", "write"]
