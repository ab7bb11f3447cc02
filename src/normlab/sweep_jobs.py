"""A sweep's jobs as Hydra's basic sweeper expands them, and the one-line refusal of a sweep that
names a job twice (`seed=0,0`: two jobs, one folder), before any job's folder is made, under
every launcher (`RefuseJobsNamedTwice`, a Hydra callback in conf/hydra/default.yaml)."""

import sys

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def refuse(message: str) -> None:
    """One line on stderr, exit code 2: before any job's folder is made, nothing trains."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def named_twice(job_overrides, command_line: list[str]) -> str | None:
    """The first job the sweep names twice (`seed=0,0`: one folder, one run), said in one line
    by the values the `command_line` sweeps, with what is allowed; None when every job is named
    once."""
    parsed = OverridesParser.create().parse_overrides(command_line)
    swept_keys = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    first_seen = {}
    for i, overrides in enumerate(job_overrides):
        key = tuple(sorted(overrides))
        if key in first_seen:
            swept = [o for o in overrides if o.split("=", 1)[0] in swept_keys]
            shown = " ".join(swept) or " ".join(overrides)
            return (f"the sweep names the job {shown} twice (jobs #{first_seen[key]} and #{i}: "
                    "one folder, one run); allowed: each value once in a sweep")  # fmt: skip
        first_seen[key] = i
    return None


def sweep_jobs(config: DictConfig) -> tuple[list[list[str]], list[str]]:
    """The jobs' overrides as the basic sweeper makes them from the sweep's params
    (hydra.sweeper.params) and command line, and those overrides as given."""
    params = config.hydra.sweeper.get("params") or {}
    given = [f"{key}={value}" for key, value in params.items()]
    given += list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(given)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch], given


class RefuseJobsNamedTwice(Callback):
    """Refuses, in one line and before any job runs, a sweep that names a job twice."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return  # another sweeper (optuna, ...) chooses its own jobs
        try:
            jobs, given = sweep_jobs(config)
        except HydraException:
            return  # a sweep the basic sweeper refuses: Hydra says so itself
        twice = named_twice(jobs, given)
        if twice:
            refuse(twice)
