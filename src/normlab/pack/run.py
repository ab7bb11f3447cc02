"""run_pack: K runs' settings in; one Lightning fit of their pack; K solo run folders out.

Each member's folder gets what its solo run writes there: metrics.json (with ``packed_with``),
TensorBoard events under the solo tags, hparams.yaml, checkpoints/best.ckpt. The pack's own
last.ckpt (every member's state, optimizer, loops) is in `pack_dir`, which a relaunch of the
same pack resumes from.
"""

import logging
import os
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from normlab import metric_names as names
from normlab.callbacks.board import every_norm_option, start_record
from normlab.callbacks.settings import statistics_callbacks
from normlab.compile import compile_enabled, compile_model
from normlab.config import ConfigError, Settings, load_settings
from normlab.console import quiet_console
from normlab.data import dataset_spec
from normlab.metric_names import json_key
from normlab.norms import NORMS, options_of
from normlab.pack.checkpoints import MemberCheckpoints
from normlab.pack.data import PackedData
from normlab.pack.logger import MemberLogger
from normlab.pack.member_callbacks import MemberStatistics
from normlab.pack.model import PackedModel
from normlab.pack.module import PackedClassifier, member_tag
from normlab.pack.packable import pack_refusal, require_one_pack
from normlab.run.build import build_module
from normlab.run.finish import Ending, finish_run
from normlab.run.fit import failure_recorded, interruption_recorded
from normlab.run.identity import RunIdentity, identity_hash
from normlab.run.lock import run_folder_lock
from normlab.run.record import (
    RunRecord,
    finished_record,
    record_run,
)
from normlab.run.resume import (
    FitTimeInCheckpoint,
    checkpoint_to_resume,
    purge_step,
)
from normlab.run.sizes import epoch_images, probe_images, steps_per_epoch
from normlab.run.trainer import lightning_trainer, run_callbacks

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One run of a pack: its settings, its folder and the overrides that made it."""

    settings: Settings
    run_dir: Path
    overrides: list[str]


def pack_identity(identities: list[RunIdentity]) -> RunIdentity:
    settings = {"members": [i.hash for i in identities]}
    return RunIdentity(settings, identity_hash(settings))


def build_pack(members: list[Member]) -> PackedClassifier:
    """Each member's model as its solo run builds it (seeded by its seed), packed."""
    models, lrs = [], []
    for m in members:
        pl.seed_everything(m.settings.seed, workers=True, verbose=False)
        solo = build_module(m.settings)
        models.append(solo.model)
        lrs.append(solo.lr)
    spec = dataset_spec(members[0].settings.data.name)
    optims = [m.settings.optim for m in members]
    return PackedClassifier(PackedModel(models), spec.num_classes, lrs, optims)


def make_pack_trainer(
    members: list[Member],
    module: PackedClassifier,
    pack_dir: Path,
    identities,
    pack: RunIdentity,
    purge_step: int | None = None,
):
    s, name = members[0].settings, f"pack-{pack.hash}"
    loggers = [MemberLogger(k, str(m.run_dir), purge_step=purge_step, **asdict(s.logger))
               for k, m in enumerate(members)]  # fmt: skip
    fit_time = FitTimeInCheckpoint()
    best = MemberCheckpoints(
        [m.run_dir for m in members],
        identities,
        name,
        s.callbacks.checkpoint.monitor,
        s.callbacks.checkpoint.mode.value,
    )
    last = ModelCheckpoint(
        dirpath=pack_dir / "checkpoints", filename="last", enable_version_counter=False
    )
    statistics = MemberStatistics(
        list(module.model.members),
        loggers,
        [
            statistics_callbacks(
                m.settings.callbacks, probe_images(m.settings), steps_per_epoch(s), epoch_images(s)
            )
            for m in members
        ],
    )
    callbacks = run_callbacks(s, pack, fit_time, [best, statistics], last)
    # K members' values: the console shows none
    trainer = lightning_trainer(s, pack_dir, loggers, callbacks, enable_progress_bar=False)
    return trainer, loggers, best, statistics, fit_time


def member_values(trainer, k: int, stage: str) -> dict[str, float]:
    """Member k's latest `stage` ("val" or "test") values, under the solo tags."""
    prefix = member_tag(k, "")
    return {
        key.removeprefix(prefix): float(v)
        for key, v in trainer.callback_metrics.items()
        if key.startswith(prefix) and key.removeprefix(prefix).startswith(f"{stage}/")
    }


def run_pack(members: list[Member], pack_root: Path) -> list[RunRecord]:
    """Train `members` as one pack, in a folder of `pack_root` named by the members' settings;
    each member's record, as run() returns it. Members whose folders hold a finished run of
    their settings are returned as they are, not trained."""
    for m in members:
        reason = pack_refusal(m.settings)
        if reason:
            raise ConfigError(f"{m.run_dir} cannot be packed: {reason}")
    require_one_pack([m.settings for m in members])
    identities = [RunIdentity.of(m.settings) for m in members]
    records: dict[int, RunRecord] = {}
    with ExitStack() as locks:
        for m in members:
            locks.enter_context(run_folder_lock(m.run_dir))
        todo = []
        for k, (m, identity) in enumerate(zip(members, identities, strict=True)):
            done = finished_record(m.run_dir, identity)
            if done is not None:
                records[k] = RunRecord(m.run_dir, done)
            else:
                todo.append(k)
        if todo:
            trained = train_pack(
                [members[k] for k in todo], [identities[k] for k in todo], pack_root
            )
            records.update(zip(todo, trained, strict=True))
    return [records[k] for k in range(len(members))]


def train_pack(members: list[Member], identities, pack_root: Path) -> list[RunRecord]:
    s = members[0].settings
    pack = pack_identity(identities)
    name = f"pack-{pack.hash}"
    pack_dir = Path(pack_root) / name
    module = build_pack(members)
    pack_dir.mkdir(parents=True, exist_ok=True)
    quiet_console(pack_dir, sweep=True)
    resume_from = checkpoint_to_resume(pack_dir, None, pack, module)
    trainer, loggers, best, statistics, fit_time = make_pack_trainer(
        members, module, pack_dir, identities, pack, purge_step(resume_from)
    )
    log.info(
        "pack %s: %d members of norm %s, model %s, batch %d, in %s",
        name,
        len(members),
        s.norm_name,
        s.model.name,
        s.data.batch_size,
        pack_dir,
    )
    for k, m in enumerate(members):  # bound to its settings from now on, as a solo folder
        member_of = packed_with(name, len(members), k, pack_dir, m.run_dir)
        record_run(m.run_dir, m.settings, "running", overrides=m.overrides, packed_with=member_of)
    data = PackedData([m.settings.seed for m in members], **asdict(s.data))
    data.prepare_data()
    device_type = trainer.strategy.root_device.type
    if compile_enabled(s.compile, device_type):  # the vmapped step (the CPU: packable)
        compile_model(module.model, device_type)
        log.info("compile: torch.compile over the pack's vmapped step, inductor's default mode")
    for m, logger in zip(members, loggers, strict=True):
        choices = m.settings.key_choices()
        options = every_norm_option(choices, {n: options_of(n) for n in NORMS})
        start_record(logger, options, experiment=False)  # a pack is a sweep's
    with interruption_recorded(trainer, [(m.run_dir, m.settings, m.overrides) for m in members]):
        trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    fit_seconds = fit_time.seconds()
    finals = [
        {**member_values(trainer, k, "val"), **statistics.summary(k)} for k in range(len(members))
    ]
    found = best.load_best(module)
    if any(found):
        trainer.test(module, datamodule=data, verbose=False)
    records = []
    for k, (m, logger) in enumerate(zip(members, loggers, strict=True)):
        final = finals[k]
        if found[k]:
            final.update(member_values(trainer, k, "test"))
        ending = Ending(final, best.best[k] if found[k] else None,
                        "checkpoints/best.ckpt" if found[k] else None, module.diverged.get(k),
                        fit_seconds)  # fmt: skip
        member_of = packed_with(name, len(members), k, pack_dir, m.run_dir)
        records.append(finish_run(m.run_dir, m.settings, logger, trainer, ending, m.overrides,
                                  packed_with=member_of))  # fmt: skip
    return records


def packed_with(name: str, size: int, k: int, pack_dir: Path, run_dir: Path) -> dict:
    """A member record's ``packed_with``: its pack, the pack's size, its index, and the pack's
    folder relative to the member's (../.packs/<pack>: it moves with the sweep)."""
    folder = os.path.relpath(pack_dir, run_dir)
    return {"pack": name, "members": size, "index": k, "folder": folder}


def run_members(jobs: list[dict], pack_root: Path) -> list[float]:
    """run_pack for a sweep's jobs ({"cfg", "run_dir", "overrides"} each), in a folder of
    `pack_root` named by the pack; each member's final validation accuracy, as run_and_record
    returns it. A failing pack is logged and recorded as failed in each member's folder (over
    no finished record), and the sweep goes on."""
    members = [Member(load_settings(j["cfg"]), j["run_dir"], j["overrides"]) for j in jobs]
    try:
        records = run_pack(members, pack_root)
    except Exception as raised:
        runs = [(m.run_dir, m.settings) for m in members]
        message, expected = failure_recorded(raised, pack_root, runs)
        log.error("pack failed, the sweep goes on: %s", message, exc_info=not expected)
        return [float("nan")] * len(members)
    return [r.metrics.get(json_key(names.VAL_ACC), float("nan")) for r in records]


__all__ = ["Member", "run_members", "run_pack"]
