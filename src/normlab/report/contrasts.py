"""A study's declared contrasts: which cells it compares, read from a YAML file, and the
contrasts table (contrasts.csv and a section of summary.md).

    # experiments/<study>/contrasts.yaml
    metrics: [test_error, val_error]
    contrasts:
      - {a: {norm: batch, batch_size: 2}, b: {norm: group, batch_size: 2}}

Each side selects exactly one cell of the summary by its settings (any summary.csv setting
column: model, norm, batch_size, num_groups, weight_standardization, options, ...). B − A is
reported per metric (the file's `metrics`, or a contrast's own), with Holm's adjustment over
the file's contrasts of that metric; a contrast's `family` (a name) makes Holm run within the
contrasts of its family instead, so that a pre-declared primary contrast is not diluted by the
exploratory ones. A contrast's `name` lets a claim (normlab.report.claims) refer to it.

A contrast with `minus` is a difference of differences, (B − A) − (minus.B − minus.A): is an
effect larger in one setting than in another (a deeper model, say)? Each pair's per-seed
differences (over the seeds both of its cells ran) are the samples, compared as two cells are.

      - a: {model: resnet20, norm: batch, batch_size: 32}
        b: {model: resnet20, norm: batch, batch_size: 2}
        minus: {a: {model: cnn, norm: batch, batch_size: 32}, b: {model: cnn, ...}}
"""

import csv
import io
import math
from pathlib import Path

from omegaconf import OmegaConf

from normlab.report.collect import option_columns
from normlab.report.statistics import Contrast, contrast, holm
from normlab.report.tables import label, varying

COLUMNS = ["metric", "a", "b", "n_a", "n_b", "difference", "ci_low", "ci_high", "test", "p",
           "welch_p", "holm_p", "ci_excludes_zero", "name", "family"]  # fmt: skip


class ContrastError(ValueError):
    """A declared contrast that selects no cell, or several."""


def cell_name(entry: dict, shown: set[str] = frozenset()) -> str:
    """batch @ batch 8, lr=0.00625; with `shown` (varying(table)), prefixed by the model
    (resnet20: ...) and followed by the epochs (15 epochs) where the cells differ in them."""
    options = [f"{k}={entry[k]}" for k in option_columns() if entry.get(k) is not None]
    if entry.get("lr") is not None:
        options.append(f"lr={entry['lr']:.4g}")
    if "max_epochs" in shown:
        options.append(f"{entry['max_epochs']} epochs")
    extra = f", {', '.join(options)}" if options else ""
    model = f"{entry['model']}: " if "model" in shown else ""
    return f"{model}{label(entry)} @ batch {entry['batch_size']}{extra}"


def select(table: list[dict], selector: dict) -> dict:
    found = [e for e in table if all(str(e.get(k)) == str(v) for k, v in selector.items())]
    if len(found) != 1:
        raise ContrastError(f"contrast cell {dict(selector)} matches {len(found)} cells; "
                            "allowed: settings that select exactly one")  # fmt: skip
    return found[0]


def per_seed(entry: dict, metric: str) -> dict:
    values = {}
    for run in entry["runs"]:
        value = run.get(metric)
        if isinstance(value, int | float) and not math.isnan(value):
            values[run.get("seed")] = float(value)
    return values


def paired_differences(table: list[dict], pair: dict, metric: str, name) -> tuple[dict, str]:
    """Seed -> B − A over the seeds both cells ran, and the pair's name."""
    a, b = select(table, pair["a"]), select(table, pair["b"])
    va, vb = per_seed(a, metric), per_seed(b, metric)
    seeds = sorted(set(va) & set(vb))
    if len(seeds) < 2:
        raise ContrastError(f"contrast pair {pair['a']} -> {pair['b']} shares {len(seeds)} seeds; "
                            "allowed: a difference of differences needs 2 or more")  # fmt: skip
    return {s: vb[s] - va[s] for s in seeds}, f"({name(b)}) − ({name(a)})"


def compute(table: list[dict], declared: dict) -> list[Contrast]:
    """Every declared contrast on its metrics (the file's, or the contrast's own `metrics`);
    Holm per metric, over the contrasts of that metric."""
    rows: list[Contrast] = []
    shown = varying(table)

    def name(entry: dict) -> str:
        return cell_name(entry, shown)

    default = declared.get("metrics", ["test_error"])
    pairs = declared.get("contrasts", [])
    metrics = list(dict.fromkeys([*default, *(m for p in pairs for m in p.get("metrics", []))]))
    names = [p["name"] for p in pairs if p.get("name")]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ContrastError(f"contrast names {twice} are declared twice; allowed: unique names")
    for metric in metrics:
        computed = []
        for pair in (p for p in pairs if metric in p.get("metrics", default)):
            if "minus" in pair:
                base, base_name = paired_differences(table, pair["minus"], metric, name)
                effect, effect_name = paired_differences(table, pair, metric, name)
                row = contrast(base, effect, (base_name, effect_name), metric)
            else:
                a, b = select(table, pair["a"]), select(table, pair["b"])
                row = contrast(per_seed(a, metric), per_seed(b, metric), (name(a), name(b)),
                               metric)  # fmt: skip
            row.name, row.family = str(pair.get("name", "")), str(pair.get("family", ""))
            computed.append(row)
        for family in dict.fromkeys(c.family for c in computed):
            members = [c for c in computed if c.family == family]
            for row, adjusted in zip(members, holm([c.p for c in members]), strict=True):
                row.holm_p, row.family_size = adjusted, len(members)
        rows += computed
    return rows


def read(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def csv_text(rows: list[Contrast]) -> str:
    """contrasts.csv's text."""
    f = io.StringIO()
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    for c in rows:
        writer.writerow([c.metric, c.a, c.b, c.n_a, c.n_b, f"{c.difference:.4f}", f"{c.low:.4f}",
                         f"{c.high:.4f}", c.test, f"{c.p:.4g}", f"{c.welch_p:.4g}",
                         f"{c.holm_p:.4g}", c.excludes_zero, c.name, c.family])  # fmt: skip
    return f.getvalue()


def markdown(rows: list[Contrast]) -> str:
    if not rows:
        return ""
    holm_over = (
        "this file's contrasts of each metric, within each declared family"
        if any(c.family for c in rows)
        else "this file's contrasts of each metric"
    )
    lines = ["", "Contrasts (B − A: errors and the gap in points, drift and EMA-vs-population "
             "distance in std units; 95% CI; paired t-test where both cells ran the same seeds, "
             f"else Welch's; Holm over {holm_over}):", "",
             "| metric | A | B | B − A | 95% CI | test | p | Holm p | CI excludes 0 |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in rows:
        lines.append(f"| {c.metric} | {c.a} | {c.b} | {c.difference:+.2f} | "
                     f"[{c.low:+.2f}, {c.high:+.2f}] | {c.test} | {c.p:.3g} | {c.holm_p:.3g} | "
                     f"{'yes' if c.excludes_zero else 'no'} |")  # fmt: skip
    return "\n".join(lines) + "\n"
