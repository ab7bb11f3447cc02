"""Rows -> summary.csv and a Markdown table, with the mean and spread across seeds."""

import csv
import io
import math
import statistics

from normlab.norms.registry import report_columns
from normlab.report.collect import columns, settings_columns
from normlab.report.statistics import interval


def group_by() -> list[str]:
    """What makes a cell: every setting but the seed (the lr included: a study may sweep it)."""
    return [c for c in settings_columns() if c != "seed"]


AGGREGATED = ["val_error", "test_error", "gap_points", "drift_to_batch", "precise_distance",
              "train_images"]  # fmt: skip
UNEQUAL = 0.01  # training images differing by more than this fraction are flagged


def varying(table: list[dict]) -> set[str]:
    """Which of model and max_epochs take more than one value in `table` (names then say them)."""
    return {k for k in ("model", "max_epochs") if len({e.get(k) for e in table}) > 1}


def label(entry: dict) -> str:
    """The norm as a reader names it: batch, group+WS, batch (PreciseBN at test), and the options
    that vary within the sweep: batch_renorm (r_max=1.5, d_max=0.5)."""
    text = entry["norm"] + ("+WS" if entry.get("weight_standardization") else "")
    text += f" ({entry['options']})" if entry.get("options") else ""
    return text + (" (PreciseBN at test)" if entry.get("population_at_test") else "")


def describe(table: list[dict]) -> str:
    """What every row shares: dataset, model, epochs and seeds (each listed if they differ)."""

    def listed(values) -> str:
        values = {v for v in values if v is not None}
        numbers = sorted(v for v in values if not isinstance(v, str))  # 5 before 15
        values = numbers + sorted(v for v in values if isinstance(v, str))
        return ", ".join(str(v) for v in values) or "?"

    epochs = listed(e for entry in table for e in entry["epochs"])
    seeds = listed(s for entry in table for s in entry["seeds"])
    ns = sorted({entry["n"] for entry in table})
    n = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    return (f"{listed(e['dataset'] for e in table)}, {listed(e['model'] for e in table)}, "
            f"{epochs} epochs, seeds {seeds} ({n} per point)")  # fmt: skip


def unequal_training(table: list[dict]) -> tuple[float, float] | None:
    """(fewest, most) training images across the rows when they differ by more than UNEQUAL."""
    counts = [e["train_images"] for e in table if not math.isnan(e["train_images"])]
    if counts and max(counts) > (1 + UNEQUAL) * min(counts):
        return min(counts), max(counts)
    return None


def csv_text(rows: list[dict]) -> str:
    """summary.csv's text: one row per run."""
    f = io.StringIO()
    writer = csv.DictWriter(f, columns(), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return f.getvalue()


def finite(values) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and not math.isnan(v)]


def mean_std(values) -> tuple[float, float]:
    values = finite(values)
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def sort_key(key: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in key)


def aggregate(rows: list[dict]) -> list[dict]:
    """Finished runs grouped by setting (seeds pooled): n, then mean and std of each result."""
    keys = group_by()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("status") == "finished":
            groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    table = []
    for key in sorted(groups, key=sort_key):
        members = groups[key]
        entry = dict(zip(keys, key, strict=True))
        entry["n"] = len(members)
        entry["runs"] = members
        entry["seeds"] = sorted({r.get("seed") for r in members}, key=str)
        entry["epochs"] = sorted({int(r["epochs"]) for r in members if r.get("epochs")})
        for column in AGGREGATED:
            entry[column], entry[column + "_std"] = mean_std(r.get(column) for r in members)
            entry[column + "_ci"] = interval(finite(r.get(column) for r in members))
        table.append(entry)
    return table


def modes(entry: dict) -> str:
    """The cell's execution modes with their run counts: "solo, callbacks on" when one, else
    "solo, callbacks on: 3; packed, callbacks on: 2"."""
    found = [r.get("execution") or "?" for r in entry["runs"]]
    kinds = sorted(set(found))
    return kinds[0] if len(kinds) == 1 else "; ".join(f"{k}: {found.count(k)}" for k in kinds)


def cell(mean: float, std: float, n: int, digits: int, ci=None) -> str:
    """mean ± SD, and the 95% CI of the mean when given: 9.87 ± 0.27 [9.20, 10.54]."""
    if math.isnan(mean):
        return "–"
    if n <= 1:
        return f"{mean:.{digits}f}"
    text = f"{mean:.{digits}f} ± {std:.{digits}f}"
    if ci is not None and not math.isnan(ci[0]):
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return text


def markdown(rows: list[dict], table: list[dict]) -> str:
    """What the rows share, the aggregated table (mean ± std over n seeds), then every run that
    did not finish, with its status and error."""
    lines = [f"{describe(table)}; mean ± SD over the n seeds, [95% CI of the mean, t-based]."
             if table else "No finished runs."]  # fmt: skip
    flagged = unequal_training(table)
    if flagged:
        lines.append(f"Unequal training: {flagged[0]:.0f} to {flagged[1]:.0f} training images "
                     "(see train images); compare rows with care.")  # fmt: skip
    shown = [c for c in report_columns() if any(e.get(c.option) is not None for e in table)]
    epochs = "max_epochs" in varying(table)  # a column only where they differ
    header = ["dataset", "model", "norm", "batch", *(c.header for c in shown),
              *(["epochs"] if epochs else []), "lr", "val error %",
              "test error %", "train/eval gap (points)", "drift to batch", "EMA vs population",
              "train images", "n", "runs as"]  # fmt: skip
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in table:
        images = "–" if math.isnan(e["train_images"]) else f"{e['train_images']:.0f}"
        cells = [e["dataset"], e["model"], label(e), e["batch_size"],
                 *("" if e.get(c.option) is None else e[c.option] for c in shown),
                 *([e.get("max_epochs")] if epochs else []),
                 "" if e.get("lr") is None else f"{e['lr']:.4g}",
                 cell(e["val_error"], e["val_error_std"], e["n"], 2, e["val_error_ci"]),
                 cell(e["test_error"], e["test_error_std"], e["n"], 2, e["test_error_ci"]),
                 cell(e["gap_points"], e["gap_points_std"], e["n"], 2),
                 cell(e["drift_to_batch"], e["drift_to_batch_std"], e["n"], 3),
                 cell(e["precise_distance"], e["precise_distance_std"], e["n"], 3),
                 images, e["n"], modes(e)]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    unfinished = [r for r in rows if r.get("status") != "finished"]
    if unfinished:
        lines += ["", "Runs not finished:", "", "| run | status | error |", "|---|---|---|"]
        for r in unfinished:
            detail = r.get("error") or ""
            if r.get("status") == "diverged" and r.get("step") is not None:
                detail = f"loss not finite at step {r['step']}. {detail}".strip()
            if r.get("status") == "interrupted" and r.get("step") is not None:
                detail = f"stopped at step {r['step']}; the same command resumes it"
            lines.append(f"| {r['run']} | {r.get('status')} | {detail} |")
    return "\n".join(lines) + "\n"
