"""run(cfg): a Hydra config (or Settings) in; a trained, tested model and metrics.json out.
fit_members: the one fit of K >= 1 runs that run() and a pack (normlab.pack.run) go through.
run_and_record(cfg): run() as train.py calls it, a failure recorded and said in one line."""

import logging
import signal
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig

from normlab import metric_names as names
from normlab.atomic_write import disk_full_in_chain
from normlab.callbacks.board import every_norm_option, start_record
from normlab.compile import compile_enabled, compile_mode, compile_model
from normlab.config import Settings, load_settings
from normlab.console import quiet_console
from normlab.data import ImageClassificationData
from normlab.job_files import put_back
from normlab.metric_names import json_key
from normlab.module import Classifier
from normlab.norms import NORMS, options_of
from normlab.run.build import build_module, norm_layers
from normlab.run.finish import finish_run, fit_endings
from normlab.run.identity import RunIdentity
from normlab.run.job import Member, failure_message, in_sweep, output_dir
from normlab.run.lock import RunFolderBusy, run_folder_lock
from normlab.run.record import (
    RunFolderTaken,
    RunRecord,
    finished_record,
    record_failure,
    record_run,
)
from normlab.run.resume import checkpoint_to_resume, purge_step
from normlab.run.trainer import make_trainer, settle_lr

log = logging.getLogger(__name__)


def run(
    config: DictConfig | Settings, run_dir: Path | None = None, overrides: list[str] | None = None
) -> RunRecord:
    """Train, test on the best checkpoint, write metrics.json; return the run's record.
    `run_dir`: default Hydra's run folder (outside Hydra: <paths.root>/runs/direct). One process
    per folder; a finished run of the same settings is returned, not trained again.
    `overrides`: what its record names (default: Hydra's of this job)."""
    s = load_settings(config) if isinstance(config, DictConfig) else config
    run_dir = Path(run_dir) if run_dir is not None else output_dir(s.paths.root)
    member = Member(s, run_dir, overrides)
    with run_folder_lock(run_dir):
        done = finished_record(run_dir, member.identity)
        if done is not None and not s.ckpt_path:
            log.info("%s already finished, not training again (move the folder to retrain)",
                     run_dir)  # fmt: skip
            return RunRecord(run_dir, done)
        return fit_solo(member)


def fit_solo(member: Member) -> RunRecord:
    """fit_members for one run, in its own folder (its lock held)."""
    s = member.settings
    pl.seed_everything(s.seed, workers=True, verbose=False)
    module = build_module(s)
    data = ImageClassificationData(**asdict(s.data), seed=s.seed)
    member = member.with_extra(**norm_layers(module.model))
    return fit_members([member], module, data, member.run_dir, member.identity, s.ckpt_path)[0]


def fit_members(
    members: list[Member],
    module: Classifier,
    data,
    root: Path,
    identity: RunIdentity,
    ckpt_path: str | None = None,
) -> list[RunRecord]:
    """One fit of K >= 1 runs, solo (K = 1, `root` its folder) or a pack (`root` the pack's
    folder, `identity` the pack's): resumed from `root`'s checkpoint (or `ckpt_path`), trained,
    each run tested on its best checkpoint and recorded in its own folder."""
    s, sweep = members[0].settings, in_sweep() or len(members) > 1
    quiet_console(root, sweep)
    resume_from = checkpoint_to_resume(root, ckpt_path, identity, module)
    fit = make_trainer(members, root, identity, purge_step(resume_from), module)
    settle_lr(members, module, fit.trainer)
    if len(members) > 1:  # each folder bound to its settings from now on, as a solo folder is
        for m in members:
            record_run(m.run_dir, m.settings, "running", 1, m.overrides, m.identity, **m.extra)
    data.prepare_data()  # a missing dataset fails here, before training starts
    # In the module's own dtype before the fit: Lightning (2.6, Trainer._run) loads a resumed
    # checkpoint's weights before its precision plugin converts the module, so under 64-true
    # the float64 weights would be rounded through float32 parameters.
    fit.trainer.precision_plugin.convert_module(module)
    device_type = fit.trainer.strategy.root_device.type
    if compile_enabled(s.compile, device_type):  # a pack: its vmapped step (packable)
        compile_model(module.model, device_type)
        log.info("compile: torch.compile, mode %s", compile_mode(device_type) or "default")
    for m, logger in zip(members, fit.loggers, strict=True):
        choices = m.settings.key_choices(fit.trainer.world_size)
        options = every_norm_option(choices, {n: options_of(n) for n in NORMS})
        start_record(logger, options, experiment=not sweep)  # a pack is a sweep's
    with interruption_recorded(fit.trainer, members):
        fit.trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    endings = fit_endings(fit, module, data)
    return [finish_run(m, logger, fit.trainer, ending)
            for m, logger, ending in zip(members, fit.loggers, endings, strict=True)]  # fmt: skip


def run_and_record(cfg: DictConfig) -> float:
    """run(cfg) as train.py calls it; returns the final validation accuracy (for sweepers).
    A failure is recorded in metrics.json (status 'failed'), but over no finished record, and
    not in a folder another process is running.

    Bad config, missing data, a busy run folder: one line on stderr, exit code 2. Any other
    error: re-raised. In a sweep, the error is logged and the sweep goes on with the next run.
    """
    s = None
    try:
        s = load_settings(cfg)
        return run(s).metrics.get(json_key(names.VAL_ACC), float("nan"))
    except Exception as raised:
        run_dir = output_dir(cfg.paths.root)
        message, expected = failure_recorded(raised, run_dir, [(run_dir, s)])
        if in_sweep():
            log.error("run failed, the sweep goes on: %s", message, exc_info=not expected)
            return float("nan")
        if expected:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        raise


def failure_recorded(
    raised: Exception, root: Path, runs: list[tuple[Path, Settings | None]]
) -> tuple[str, bool]:
    """After a run (or a pack of runs: `runs`, their folders and settings) failed: each folder
    recorded as failed (over no finished record), or put back as it was when it is another
    run's (busy, or bound to other settings); the line that says what failed (a full disk
    under `root` said as such), and whether the failure was expected."""
    error = disk_full_in_chain(raised, root) or raised
    message, expected = failure_message(error)
    for run_dir, s in runs:
        if isinstance(error, RunFolderBusy | RunFolderTaken):  # another run's: left as it was
            put_back(run_dir, lock=isinstance(error, RunFolderTaken))
        else:
            record_failure(run_dir, s, message)
    return message, expected


@contextmanager
def interruption_recorded(trainer: pl.Trainer, members: list[Member]):
    """Ctrl-C (SIGINT) or SIGTERM during the fit: each member's record says `interrupted` at
    its step before the exit goes on. Lightning turns both into
    a SystemExit (after KeyboardInterrupt, sys.exit(1); after SIGTERM, at the epoch's end, a
    SIGTERMException whose code is None, which would exit 0: it exits 143, as a process ended
    by SIGTERM does)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as stop:
        step = trainer.global_step
        for m in members:
            record_run(m.run_dir, m.settings, "interrupted", trainer.world_size, m.overrides,
                       m.identity, step=step, epochs=float(trainer.current_epoch))  # fmt: skip
        log.warning("interrupted at step %d: recorded; the same command resumes from the last "
                    "epoch's checkpoint", step)  # fmt: skip
        if isinstance(stop, SystemExit) and not stop.code:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
