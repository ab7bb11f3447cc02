"""A sweep folder -> one row per run: its settings, status and final metrics (reads files only)."""

import functools
import math
from pathlib import Path

from omegaconf import OmegaConf

from normlab.metric_names import FINALS, json_key
from normlab.norms.registry import NORMS, effective_options, report_columns
from normlab.run.identity import flat
from normlab.run.record import RecordUnreadable, read_record

# summary.csv's columns: the settings that tell runs apart (with each registered norm's swept
# options, NormSpec.columns, after the batch size), then the results.
BEFORE_OPTIONS = ["dataset", "model", "norm", "weight_standardization", "population_at_test",
                  "batch_size"]  # fmt: skip
AFTER_OPTIONS = ["options", "max_epochs", "seed", "lr"]
FINAL_COLUMNS = [f.column for f in FINALS]
# errors and the train/eval gap in percentage points, then the final values as logged
RESULTS = ["val_error", "test_error", "gap_points", *FINAL_COLUMNS, "best_val_acc", "fit_seconds"]


def option_columns() -> list[str]:
    return [c.option for c in report_columns()]


def settings_columns() -> list[str]:
    return [*BEFORE_OPTIONS, *option_columns(), *AFTER_OPTIONS]


def columns() -> list[str]:
    return ["run", "status", *settings_columns(), *RESULTS, "step", "error", "execution"]


def run_dirs(sweep: Path) -> list[Path]:
    """Every run folder under `sweep`: those with a metrics.json or Hydra's .hydra/config.yaml
    (a run still going)."""
    sweep = Path(sweep)
    found = {p.parent for p in sweep.rglob("metrics.json")}
    found |= {p.parent.parent for p in sweep.rglob(".hydra/config.yaml")}
    return sorted(found)


def error_percent(acc) -> float:
    return 100 * (1 - acc) if isinstance(acc, int | float) and not math.isnan(acc) else math.nan


def points(fraction) -> float:
    ok = isinstance(fraction, int | float) and not math.isnan(fraction)
    return 100 * fraction if ok else math.nan


def settings_of(record: dict | None, run_dir: Path) -> dict:
    """The run's settings as identity keys (normlab.run.identity): from its own record; for a
    record written before records carried them, or a run still going, from .hydra/config.yaml."""
    if record is not None and "settings" in record:
        return record["settings"]
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        return {}
    return dict(config_settings(str(config.resolve()), config.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def config_settings(path: str, mtime_ns: int) -> dict:
    """A Hydra config.yaml's settings, flat; cached by path and modification time, since a
    study's report reads the same runs in several of its reports (and other studies')."""
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    cfg.pop("hydra", None)
    return flat(cfg)


def read_run(run_dir: Path, sweep: Path) -> dict:
    """One row. A run with no metrics.json yet is 'running' (or was killed before writing it);
    one whose metrics.json cannot be read is 'corrupt'."""
    try:
        record, status = read_record(run_dir), None
    except RecordUnreadable as error:
        record, status = None, "corrupt"
        corrupt = str(error)
    cfg = settings_of(record, run_dir)
    norm = {k.removeprefix("norm."): v for k, v in cfg.items() if k.startswith("norm.")}
    norm = effective_options(norm.get("name"), norm) if norm.get("name") else norm
    population = cfg.get("callbacks.population.enabled") and cfg.get(
        "callbacks.population.apply_at_end"
    )
    row = {
        "run": str(run_dir.relative_to(sweep)) if run_dir != sweep else run_dir.name,
        "dataset": cfg.get("data.name"),
        "model": cfg.get("model.name"),
        "norm": norm.get("name"),
        "weight_standardization": bool(cfg.get("model.weight_standardization", False)),
        "population_at_test": bool(population),
        "batch_size": cfg.get("data.batch_size"),
        "max_epochs": cfg.get("trainer.max_epochs"),
        "seed": cfg.get("seed"),
    }
    own = {c.option for c in NORMS[row["norm"]].columns} if row["norm"] in NORMS else set()
    row.update({option: norm.get(option) if option in own else None for option in option_columns()})
    row["norm_options"] = {k: v for k, v in norm.items() if k not in own and k != "name"}
    if status == "corrupt":
        return {**row, "status": status, "error": corrupt}
    if record is None:
        return {**row, "status": "running"}
    metrics = record
    row.update({k: metrics.get(k) for k in ("status", "lr", "best_val_acc", "fit_seconds", "step",
                                             "error")})  # fmt: skip
    row.update({f.column: metrics.get(json_key(f.tag)) for f in FINALS})
    row["execution"] = execution(record, cfg)
    row["val_error"] = error_percent(row["val_acc"])
    row["test_error"] = error_percent(row["test_acc"])
    row["gap_points"] = points(row["gap_acc"])
    return row


CALLBACKS = ("drift", "train_eval_gap", "population")


def execution(record: dict, cfg: dict) -> str:
    """How the run was executed: solo or a packed member, with the statistics callbacks on (any
    of them) or off ("packed, callbacks off")."""
    on = any(cfg.get(f"callbacks.{name}.enabled") for name in CALLBACKS)
    return f"{'packed' if record.get('packed_with') else 'solo'}, callbacks {'on' if on else 'off'}"


def varying_options(rows: list[dict]) -> None:
    """Set each row's `options`: its norm's options whose value differs between the sweep's runs
    of that norm ("r_max=1.5, d_max=0.5"), so that runs differing only there are not pooled."""
    values: dict[tuple, set] = {}
    for row in rows:
        for key, value in row["norm_options"].items():
            values.setdefault((row["norm"], key), set()).add(repr(value))
    for row in rows:
        varying = [k for k in row["norm_options"] if len(values[(row["norm"], k)]) > 1]
        row["options"] = ", ".join(f"{k}={row['norm_options'][k]}" for k in varying)


def collect(*sweeps: Path) -> list[dict]:
    """One row per run under the sweep folders; with several, each run is named by its folder's
    path as given (bn_vs_gn_batch/runs/norm=batch,seed=0) so that runs of the same name differ."""
    rows = []
    for sweep in map(Path, sweeps):
        for row in (read_run(d, sweep) for d in run_dirs(sweep)):
            rows.append({**row, "run": str(sweep / row["run"])} if len(sweeps) > 1 else row)
    varying_options(rows)
    return rows
