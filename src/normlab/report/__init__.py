"""Sweep folder -> summary.csv, summary.md and plots. Reads run folders; never trains.

python -m normlab.report <sweep dir> [--out DIR]
"""

from pathlib import Path

from normlab.report.collect import collect
from normlab.report.plots import plot
from normlab.report.tables import aggregate, markdown, write_csv


def summarize(sweep: Path, out: Path | None = None) -> list[Path]:
    """Write summary.csv, summary.md and the PNGs (into `out`, default the sweep folder)."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise FileNotFoundError(f"no sweep folder at {sweep}")
    out = Path(out or sweep)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(sweep)
    table = aggregate(rows)
    write_csv(rows, out / "summary.csv")
    (out / "summary.md").write_text(markdown(rows, table))
    return [out / "summary.csv", out / "summary.md", *plot(table, out)]


__all__ = ["aggregate", "collect", "markdown", "plot", "summarize"]
