"""A sweep folder -> one row per run: its settings, status and final metrics (reads files only)."""

import json
import math
from pathlib import Path

from omegaconf import OmegaConf

# summary.csv's columns: the settings that tell runs apart, then the results.
SETTINGS = ["dataset", "model", "norm", "batch_size", "virtual_batch_size", "num_groups",
            "group_size", "seed", "lr"]  # fmt: skip
RESULTS = [
    "val_error", "test_error", "val_acc", "test_acc", "best_val_acc",
    "gap_acc", "gap_loss", "drift_to_batch", "drift_change", "precise_distance",
    "val_acc_population", "fit_seconds",
]  # fmt: skip
COLUMNS = ["run", "status", *SETTINGS, *RESULTS, "step", "error"]

FROM_METRICS = {
    "gap_acc": "gap_acc",
    "gap_loss": "gap_loss",
    "drift_to_batch": "stats_drift_mean_to_batch_mean",
    "drift_change": "stats_drift_mean_change_mean",
    "precise_distance": "precise_distance_mean",
    "val_acc_population": "precise_val_acc_population",
}


def run_dirs(sweep: Path) -> list[Path]:
    """Every run folder under `sweep`: those with Hydra's .hydra/config.yaml."""
    return sorted(p.parent.parent for p in Path(sweep).rglob(".hydra/config.yaml"))


def error_percent(acc) -> float:
    return 100 * (1 - acc) if isinstance(acc, int | float) and not math.isnan(acc) else math.nan


def read_run(run_dir: Path, sweep: Path) -> dict:
    """One row. A run with no metrics.json yet is 'running' (or was killed before writing it)."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    norm = cfg.get("norm", {})
    row = {
        "run": str(run_dir.relative_to(sweep)) if run_dir != sweep else run_dir.name,
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "norm": norm.get("name"),
        "batch_size": cfg.data.batch_size,
        "virtual_batch_size": norm.get("virtual_batch_size"),  # ghost_batch's normalization batch
        "num_groups": norm.get("num_groups") if norm.get("name") == "group" else None,
        "group_size": norm.get("group_size") if norm.get("name") == "group" else None,
        "seed": cfg.get("seed"),
    }
    if row["group_size"] is not None:
        row["num_groups"] = None
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return {**row, "status": "running"}
    metrics = json.loads(metrics_file.read_text())
    row.update({k: metrics.get(k) for k in ("status", "lr", "val_acc", "test_acc", "best_val_acc",
                                             "fit_seconds", "step", "error")})  # fmt: skip
    row.update({k: metrics.get(v) for k, v in FROM_METRICS.items()})
    row["val_error"] = error_percent(row["val_acc"])
    row["test_error"] = error_percent(row["test_acc"])
    return row


def collect(sweep: Path) -> list[dict]:
    sweep = Path(sweep)
    return [read_run(d, sweep) for d in run_dirs(sweep)]
