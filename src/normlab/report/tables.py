"""Rows -> summary.csv and a Markdown table, with the mean and spread across seeds."""

import csv
import math
import statistics
from pathlib import Path

from normlab.report.collect import COLUMNS

GROUP_BY = ["dataset", "model", "norm", "batch_size", "virtual_batch_size", "num_groups",
            "group_size"]  # fmt: skip
AGGREGATED = ["val_error", "test_error", "gap_acc", "drift_to_batch", "precise_distance"]


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
        for column in AGGREGATED:
            entry[column], entry[column + "_std"] = mean_std(r.get(column) for r in members)
        table.append(entry)
    return table


def cell(mean: float, std: float, n: int, digits: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def markdown(rows: list[dict], table: list[dict]) -> str:
    """The aggregated table, then every run that did not finish, with its status and error."""
    lines = [
        "| dataset | model | norm | batch | virtual batch | groups | val error % | test error % "
        "| train/eval gap (acc) | drift to batch | EMA vs population | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        groups = e["num_groups"] or (f"{e['group_size']}/group" if e["group_size"] else "")
        lines.append(
            f"| {e['dataset']} | {e['model']} | {e['norm']} | {e['batch_size']} "
            f"| {e['virtual_batch_size'] or ''} | {groups} "
            f"| {cell(e['val_error'], e['val_error_std'], e['n'], 2)} "
            f"| {cell(e['test_error'], e['test_error_std'], e['n'], 2)} "
            f"| {cell(e['gap_acc'], e['gap_acc_std'], e['n'], 4)} "
            f"| {cell(e['drift_to_batch'], e['drift_to_batch_std'], e['n'], 3)} "
            f"| {cell(e['precise_distance'], e['precise_distance_std'], e['n'], 3)} | {e['n']} |"
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
