"""Sweep folder -> summary.csv, summary.md and plots. Reads run folders; never trains.

python -m normlab.report <sweep dir> [more sweep dirs] [--out DIR]
"""

from collections.abc import Sequence
from pathlib import Path

from normlab.report import contrasts as declared_contrasts
from normlab.report import lr_selection
from normlab.report.collect import collect
from normlab.report.plots import plot
from normlab.report.tables import aggregate, markdown, write_csv


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
    sweep = Path(sweep)
    for folder in (sweep, *beside):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no sweep folder at {folder}")
    out = Path(out or sweep)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(sweep, *beside)
    table = aggregate(rows)
    write_csv(rows, out / "summary.csv")
    contrasts = Path(contrasts) if contrasts else sweep / "contrasts.yaml"
    declared = (
        declared_contrasts.compute(table, declared_contrasts.read(contrasts))
        if (contrasts.is_file())
        else []
    )
    best = lr_selection.best_lrs(table)
    text = markdown(rows, table) + lr_selection.markdown(best)
    (out / "summary.md").write_text(text + declared_contrasts.markdown(declared))
    written = [out / "summary.csv", out / "summary.md"]
    if best:
        lr_selection.write_csv(best, out / "best_lr.csv")
        written.append(out / "best_lr.csv")
    if declared:
        declared_contrasts.write_csv(declared, out / "contrasts.csv")
        written.append(out / "contrasts.csv")
    return [*written, *plot(table, out)]


__all__ = ["aggregate", "collect", "markdown", "plot", "summarize"]
