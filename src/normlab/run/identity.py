"""A run's identity: the settings that change its numbers, flat, and a hash of them.

metrics.json and every checkpoint carry both, so a run folder is bound to the configuration
that made it: a finished run is skipped, or a checkpoint resumed, only for the same settings.
Left out are the settings that cannot change a number a run records: where files go, how the
console looks, how data is read (workers give the same batches: normlab.data), and how often
curves are logged.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from normlab.compile import compile_enabled, device_type_of
from normlab.log_interval import drift_interval
from normlab.run.sizes import steps_per_epoch

NOT_IDENTITY = (
    "paths.",
    "ckpt_path",
    "logger.",
    "data.root",
    "data.num_workers",
    "data.persistent_workers",
    "data.pin_memory",
    "data.download",
    "data.verify_checksums",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "callbacks.checkpoint.save_last",
    "callbacks.lr_monitor",
)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dataclasses and dicts as one dict of dotted keys to JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}{key}."))
        return out
    value = getattr(value, "value", value)  # an Enum as its value
    if isinstance(value, tuple | list):
        value = [getattr(v, "value", v) for v in value]
    return {prefix.rstrip("."): value}


def identity_hash(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunIdentity:
    settings: dict[str, Any]
    hash: str
    norm_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # as key_choices names

    @classmethod
    def of(cls, s, steps: int | None = None) -> "RunIdentity":
        """The identity of `s` (normlab.config.Settings); precision and compile as they resolve
        here (`auto` means different things on a GPU and on the CPU), drift's interval as it
        resolves for the run's epoch (`steps` an epoch, when known)."""
        settings = {
            k: v
            for k, v in flat(s).items()
            if not any(k == x or (x.endswith(".") and k.startswith(x)) for x in NOT_IDENTITY)
        }
        options = s.trainer.lightning_options()
        settings["trainer.precision"] = str(options["precision"])
        device_type = device_type_of(s.trainer.accelerator)
        settings["compile"] = compile_enabled(s.compile, device_type)
        settings["lr"] = s.learning_rate()  # on one device

        drift = s.callbacks.drift  # null: the interval it resolves to (50 for a long epoch)
        settings["callbacks.drift.every_n_steps"] = drift_interval(
            drift.every_n_steps, steps if steps is not None else steps_per_epoch(s)
        )
        options = {k: v for k, v in s.key_choices().items() if k.startswith("norm.")}
        return cls(settings, identity_hash(settings), options)

    def differences(self, other: dict[str, Any]) -> list[str]:
        """'key=theirs there, ours here' for each key whose value differs from `other`'s."""
        keys = sorted(set(self.settings) | set(other))
        missing = "(unset)"
        return [
            f"{k}={other.get(k, missing)} there, {self.settings.get(k, missing)} here"
            for k in keys
            if other.get(k, missing) != self.settings.get(k, missing)
        ]
