"""Rows -> summary.csv and a Markdown table, with the mean and spread across seeds."""

import csv
import math
import statistics
from pathlib import Path

from normlab.report.collect import COLUMNS

GROUP_BY = ["dataset", "model", "norm", "weight_standardization", "population_at_test",
            "batch_size", "virtual_batch_size", "num_groups", "group_size", "options"]  # fmt: skip
AGGREGATED = ["val_error", "test_error", "gap_points", "drift_to_batch", "precise_distance",
              "train_images"]  # fmt: skip
UNEQUAL = 0.01  # training images differing by more than this fraction are flagged


def label(entry: dict) -> str:
    """The norm as a reader names it: batch, group+WS, batch (PreciseBN at test), and the options
    that vary within the sweep: batch_renorm (r_max=1.5, d_max=0.5)."""
    text = entry["norm"] + ("+WS" if entry.get("weight_standardization") else "")
    text += f" ({entry['options']})" if entry.get("options") else ""
    return text + (" (PreciseBN at test)" if entry.get("population_at_test") else "")


def describe(table: list[dict]) -> str:
    """What every row shares: dataset, model, epochs and seeds (each listed if they differ)."""

    def listed(values) -> str:
        values = sorted({v for v in values if v is not None}, key=str)
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


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


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
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("status") == "finished":
            groups.setdefault(tuple(row.get(k) for k in GROUP_BY), []).append(row)
    table = []
    for key in sorted(groups, key=sort_key):
        members = groups[key]
        entry = dict(zip(GROUP_BY, key, strict=True))
        entry["n"] = len(members)
        entry["seeds"] = sorted({r.get("seed") for r in members}, key=str)
        entry["epochs"] = sorted({int(r["epochs"]) for r in members if r.get("epochs")})
        for column in AGGREGATED:
            entry[column], entry[column + "_std"] = mean_std(r.get(column) for r in members)
        table.append(entry)
    return table


def cell(mean: float, std: float, n: int, digits: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def markdown(rows: list[dict], table: list[dict]) -> str:
    """What the rows share, the aggregated table (mean ± std over n seeds), then every run that
    did not finish, with its status and error."""
    lines = [f"{describe(table)}; mean ± std over the n seeds." if table else "No finished runs."]
    flagged = unequal_training(table)
    if flagged:
        lines.append(f"Unequal training: {flagged[0]:.0f} to {flagged[1]:.0f} training images "
                     "(see train images); compare rows with care.")  # fmt: skip
    lines += [
        "",
        "| dataset | model | norm | batch | virtual batch | groups | val error % | test error % "
        "| train/eval gap (points) | drift to batch | EMA vs population | train images | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        groups = e["num_groups"] or (f"{e['group_size']}/group" if e["group_size"] else "")
        images = "–" if math.isnan(e["train_images"]) else f"{e['train_images']:.0f}"
        lines.append(
            f"| {e['dataset']} | {e['model']} | {label(e)} | {e['batch_size']} "
            f"| {e['virtual_batch_size'] or ''} | {groups} "
            f"| {cell(e['val_error'], e['val_error_std'], e['n'], 2)} "
            f"| {cell(e['test_error'], e['test_error_std'], e['n'], 2)} "
            f"| {cell(e['gap_points'], e['gap_points_std'], e['n'], 2)} "
            f"| {cell(e['drift_to_batch'], e['drift_to_batch_std'], e['n'], 3)} "
            f"| {cell(e['precise_distance'], e['precise_distance_std'], e['n'], 3)} "
            f"| {images} | {e['n']} |"
        )
    unfinished = [r for r in rows if r.get("status") != "finished"]
    if unfinished:
        lines += ["", "Runs not finished:", "", "| run | status | error |", "|---|---|---|"]
        for r in unfinished:
            detail = r.get("error") or ""
            if r.get("status") == "diverged" and r.get("step") is not None:
                detail = f"loss not finite at step {r['step']}. {detail}".strip()
            lines.append(f"| {r['run']} | {r.get('status')} | {detail} |")
    return "\n".join(lines) + "\n"
