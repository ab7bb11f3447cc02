"""A run's record, metrics.json: written whole, read back in one line's worth of error, and
bound to the run's identity (normlab.run_identity)."""

import json
import logging
from pathlib import Path

from normlab.atomic_write import written_whole
from normlab.errors import ConfigError
from normlab.run_identity import RunIdentity

log = logging.getLogger(__name__)

RECORD = "metrics.json"
# Settings a record wrote before it carried its identity, and their identity keys.
LEGACY_KEYS = {"norm": "norm.name", "model": "model.name", "dataset": "data.name",
               "batch_size": "data.batch_size", "seed": "seed", "lr": "lr"}  # fmt: skip


class RecordUnreadable(ValueError):
    """metrics.json exists but is not a whole JSON record (cut short, or not an object)."""


def read_record(run_dir: Path) -> dict | None:
    """The run folder's record; None when it has none; RecordUnreadable, in one line, when it
    cannot be read."""
    path = Path(run_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
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
    with written_whole(run_dir / RECORD) as f:
        f.write((json.dumps(record, indent=2) + "\n").encode())


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
        raise ConfigError(
            f"run folder {run_dir} holds {what} of other settings ({shown}); allowed: the same "
            "settings, or another folder (hydra.run.dir, hydra.sweep.dir, or move that one away)"
        )


def finished_record(run_dir: Path, identity: RunIdentity) -> dict | None:
    """The folder's record when it says the run finished with these settings; None when there
    is none or it did not finish (an unreadable one is said in one line: the run trains again);
    ConfigError when it finished with other settings."""
    try:
        record = read_record(run_dir)
    except RecordUnreadable as error:
        log.warning("%s: training as unfinished", error)
        return None
    if record is None or record.get("status") != "finished":
        return None
    require_same_settings(record, identity, run_dir, "a finished run")
    return record
