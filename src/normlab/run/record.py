"""A run's record, metrics.json: written whole, read back in one line's worth of error, and
bound to the run's identity (normlab.run.identity); what a run writes into it (record_run), its
status and its one-line result."""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from pytorch_lightning.utilities import rank_zero_only

from normlab import metric_names as names
from normlab.atomic_write import written_whole
from normlab.config import Settings
from normlab.errors import ConfigError
from normlab.metric_names import json_key
from normlab.run.identity import RunIdentity

log = logging.getLogger(__name__)

RECORD = "metrics.json"
# Settings a record wrote before it carried its identity, and their identity keys.
LEGACY_KEYS = {"norm": "norm.name", "model": "model.name", "dataset": "data.name",
               "batch_size": "data.batch_size", "seed": "seed", "lr": "lr"}  # fmt: skip


class RunFolderTaken(ConfigError):
    """The run folder holds a run of other settings (finished, unfinished, or its checkpoint):
    refused, and the folder is left exactly as it was."""


class RecordUnreadable(ValueError):
    """metrics.json exists but is not a whole JSON record (cut short, or not an object)."""


def read_record(run_dir: Path) -> dict | None:
    """The run folder's record; None when it has none; RecordUnreadable, in one line, when it
    cannot be read."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = from_strict(json.loads(path.read_text()))  # older records: bare NaN, read too
    except (ValueError, OSError) as error:
        first = (str(error).splitlines() or [""])[0]
        raise RecordUnreadable(f"{path} cannot be read ({type(error).__name__}: {first})") from None
    if not isinstance(record, dict):
        raise RecordUnreadable(f"{path} holds a {type(record).__name__}, not a record")
    return record


def write_record(run_dir: Path, record: dict) -> None:
    """metrics.json, whole or not at all; a symlink in its place is replaced, not followed."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_strict(record), indent=2, allow_nan=False)
    with written_whole(run_dir / RECORD) as f:
        f.write((text + "\n").encode())


# Strict JSON has no NaN or infinity: a record writes them as these strings (a diverged run's
# loss is "NaN"), and read_record gives them back as floats.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_strict(value):
    """`value` with every non-finite float as its NON_FINITE string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: to_strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_strict(v) for v in value]
    return value


def from_strict(value):
    """`value` with every NON_FINITE string as its float."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: from_strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_strict(v) for v in value]
    return value


def differences(record: dict, identity: RunIdentity) -> list[str]:
    """How the record's settings differ from `identity`'s: by its identity where it has one,
    else (a record written before records carried one) by the settings it named."""
    if "identity" in record:
        if record["identity"] == identity.hash:
            return []
        return identity.differences(record.get("settings") or {})
    named = {key: record[k] for k, key in LEGACY_KEYS.items() if k in record}
    ours = {k: identity.settings.get(k) for k in named}
    ours.update({k: v for k, v in identity.norm_options.items() if k in record})
    named.update({k: record[k] for k in identity.norm_options if k in record})
    return [f"{k}={named[k]} there, {ours[k]} here" for k in named if named[k] != ours[k]]


def require_same_settings(record: dict, identity: RunIdentity, run_dir: Path, what: str) -> None:
    """ConfigError, naming the keys that differ, unless `record` is of the same settings."""
    found = differences(record, identity)
    if found:
        shown = "; ".join(found[:6]) + (f"; and {len(found) - 6} more" if len(found) > 6 else "")
        raise RunFolderTaken(
            f"run folder {run_dir} holds {what} of other settings ({shown}); allowed: the same "
            "settings, or another folder (hydra.run.dir, hydra.sweep.dir, or move that one away)"
        )


def finished_record(run_dir: Path, identity: RunIdentity) -> dict | None:
    """The folder's record when it says the run finished with these settings; None when there
    is none or it did not finish (an unreadable one is said in one line: the run trains again);
    RunFolderTaken when it finished, or is running or interrupted, with other settings."""
    try:
        record = read_record(run_dir)
    except RecordUnreadable as error:
        log.warning("%s: training as unfinished", error)
        return None
    if record is None:
        return None
    status = record.get("status")
    if status in BINDING:  # a run that will go on in this folder: only with its settings
        require_same_settings(record, identity, run_dir, f"a {status} run")
    return record if status == "finished" else None


# Statuses whose folder is bound to the record's settings (a failed or diverged run's folder
# may be trained again with other ones).
BINDING = {"finished", "running", "interrupted"}


@dataclass
class RunRecord:
    """What run() leaves: its folder and its metrics.json record."""

    run_dir: Path
    metrics: dict


def record_run(
    run_dir: Path,
    s: Settings | None,
    status: str,
    world_size: int = 1,
    overrides: list[str] | None = None,
    identity: RunIdentity | None = None,
    **results,
) -> dict:
    """metrics.json (written by the global rank zero only, whole): the status, the key settings,
    the run's identity and every setting that changes its numbers, the results, the overrides
    (default: Hydra's of this job); returns it. `identity`: the settings', when known."""
    try:
        choices = s.key_choices(world_size) if s is not None else {}
        if identity is None and s is not None:
            identity = RunIdentity.of(s)
    except Exception:  # settings too broken to describe still get their status recorded
        choices, identity = {}, None
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    record = {"status": status, **choices, **results, "overrides": overrides}
    if identity is not None:
        record.update(identity=identity.hash, settings=identity.settings)
    if rank_zero_only.rank == 0:
        write_record(run_dir, record)
    return record


def record_failure(run_dir: Path, s: Settings | None, message: str) -> None:
    """Records a failed run, unless the folder holds a finished run (kept as it is); a record
    that cannot be written (a full disk) is said in one line."""
    try:
        if (read_record(run_dir) or {}).get("status") == "finished":
            return
    except RecordUnreadable:
        pass
    try:
        record_run(run_dir, s, "failed", error=message)
    except OSError as error:
        log.error("%s/metrics.json could not be written (%s)", run_dir, error)


def status_of(diverged_at: int | None, steps: int, results: dict) -> str:
    """A run's status from the step it diverged at (or None) and the steps it trained; the
    divergence step or the error go into `results`."""
    if diverged_at is not None:
        results["step"] = diverged_at
        return "diverged"
    if steps == 0:
        results["error"] = "trained 0 steps"
        return "failed"
    return "finished"


def result_line(status: str, results: dict) -> str:
    """'finished, val/acc 0.8712, test/acc 0.865': what a run ended with, in one line."""
    values = [f"{tag} {results[json_key(tag)]:.4g}" for tag in (names.VAL_ACC, names.TEST_ACC)
              if isinstance(results.get(json_key(tag)), float)]  # fmt: skip
    return ", ".join([status, *values])
