"""run(cfg): a Hydra config (or Settings) in; a trained, tested model and metrics.json out.
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
from normlab.norms import NORMS, options_of
from normlab.run.build import build_module, norm_layers
from normlab.run.finish import finish_run, fit_ending
from normlab.run.identity import RunIdentity
from normlab.run.job import failure_message, in_sweep, output_dir
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


def run(config: DictConfig | Settings, run_dir: Path | None = None) -> RunRecord:
    """Train, test on the best checkpoint, write metrics.json; return the run's record.
    `run_dir`: default Hydra's run folder (outside Hydra: <paths.root>/runs/direct). One process
    per folder; a finished run of the same settings is returned, not trained again."""
    s = load_settings(config) if isinstance(config, DictConfig) else config
    run_dir = Path(run_dir) if run_dir is not None else output_dir(s.paths.root)
    identity = RunIdentity.of(s)
    with run_folder_lock(run_dir):
        done = finished_record(run_dir, identity)
        if done is not None and not s.ckpt_path:
            log.info("%s already finished, not training again (move the folder to retrain)",
                     run_dir)  # fmt: skip
            return RunRecord(run_dir, done)
        pl.seed_everything(s.seed, workers=True, verbose=False)
        module = build_module(s)
        quiet_console(run_dir, in_sweep())
        resume_from = checkpoint_to_resume(run_dir, s.ckpt_path, identity, module)
        fit = make_trainer(s, run_dir, identity, purge_step=purge_step(resume_from))
        settle_lr(s, module, fit.trainer)
        data = ImageClassificationData(**asdict(s.data), seed=s.seed)
        data.prepare_data()  # a missing dataset fails here, before training starts
        device_type = fit.trainer.strategy.root_device.type
        if compile_enabled(s.compile, device_type):
            compile_model(module.model, device_type)
            log.info("compile: torch.compile, mode %s", compile_mode(device_type) or "default")
        choices = s.key_choices(fit.trainer.world_size)
        options = every_norm_option(choices, {n: options_of(n) for n in NORMS})
        start_record(fit.logger, options, experiment=not in_sweep())
        with interruption_recorded(fit.trainer, [(run_dir, s, None)]):
            fit.trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
        ending = fit_ending(fit, module, data)
        return finish_run(run_dir, s, fit.logger, fit.trainer, ending, **norm_layers(module.model))


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
def interruption_recorded(trainer: pl.Trainer, runs: list[tuple[Path, Settings, list | None]]):
    """Ctrl-C (SIGINT) or SIGTERM during the fit: each run's record (folder, settings,
    overrides) says `interrupted` at its step before the exit goes on. Lightning turns both into
    a SystemExit (after KeyboardInterrupt, sys.exit(1); after SIGTERM, at the epoch's end, a
    SIGTERMException whose code is None, which would exit 0: it exits 143, as a process ended
    by SIGTERM does)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as stop:
        step = trainer.global_step
        for run_dir, s, overrides in runs:
            record_run(run_dir, s, "interrupted", trainer.world_size, overrides,
                          step=step, epochs=float(trainer.current_epoch))  # fmt: skip
        log.warning("interrupted at step %d: recorded; the same command resumes from the last "
                    "epoch's checkpoint", step)  # fmt: skip
        if isinstance(stop, SystemExit) and not stop.code:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
